package messages

import (
	"regexp"
	"slices"
	"testing"
)

// verbs are a message's formatting verbs in order: a translation must take
// the same arguments.
var verbs = regexp.MustCompile(`%[-+# 0]*[0-9]*(?:\.[0-9]+)?[a-zA-Z%]`)

// TestEveryMessageInBothLanguages: commune staff read Vietnamese, so no
// message may fall back to English, and each translation must use its
// arguments as the English does.
func TestEveryMessageInBothLanguages(t *testing.T) {
	for key, en := range english {
		vi, ok := vietnamese[key]
		if !ok {
			t.Errorf("%s has no Vietnamese", key)
			continue
		}
		if e, v := verbs.FindAllString(en, -1), verbs.FindAllString(vi, -1); !slices.Equal(e, v) {
			t.Errorf("%s: the English takes %v, the Vietnamese %v", key, e, v)
		}
	}
	for key := range vietnamese {
		if _, ok := english[key]; !ok {
			t.Errorf("%s is in Vietnamese only", key)
		}
	}
}
