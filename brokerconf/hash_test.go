package brokerconf

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Written by Debian's mosquitto_passwd 2.0.11 (`mosquitto_passwd -c -b` and
// `-H sha512`), so Verify is checked against mosquitto itself, not only
// against MosquittoHash.
const (
	mosqPassword = "pa:ss wörd"
	mosq7        = "$7$101$lEmsZ6vpSjv3Ny5/$PFGyGxp7ondhVrAydnWzhagMTZ46RbqI07evMpGVVvCqRKfSKWL1yaQsU4WE1v2gRMdevXW6hbzEx7vw1JXsXg=="
	mosq6        = "$6$GTRiyhhBuPeu1Djq$hMLTnTBq2FickJGhJa8TV8BIm8G+NpHsCzDaNX5Zhl8kRdHzeCGNY5i68K44rAW9hN2K6PW9SAYDkR5l+Io/vw=="
)

var hash7Shape = regexp.MustCompile(`^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$`)

func TestMosquittoHash(t *testing.T) {
	h, err := MosquittoHash("s3cret-token")
	if err != nil {
		t.Fatal(err)
	}
	if !hash7Shape.MatchString(h) {
		t.Fatalf("hash %q is not shaped like mosquitto_passwd's $7$101$<12-byte salt>$<64-byte key>", h)
	}
	for _, tc := range []struct {
		password string
		want     bool
	}{{"s3cret-token", true}, {"s3cret-token ", false}, {"", false}, {"S3cret-token", false}} {
		if got, err := Verify(tc.password, h); err != nil || got != tc.want {
			t.Errorf("Verify(%q) = %v, %v; want %v", tc.password, got, err, tc.want)
		}
	}
	h2, _ := MosquittoHash("s3cret-token")
	if h2 == h {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
}

func TestVerifyMosquittoPasswdVectors(t *testing.T) {
	for _, tc := range []struct {
		name, hash, password string
		want                 bool
	}{
		{"pbkdf2 right", mosq7, mosqPassword, true},
		{"pbkdf2 wrong", mosq7, "pa:ss word", false},
		{"sha512 right", mosq6, mosqPassword, true},
		{"sha512 wrong", mosq6, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Verify(tc.password, tc.hash)
			if err != nil || got != tc.want {
				t.Fatalf("Verify = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestVerifyRefusesBadHashes(t *testing.T) {
	for _, h := range []string{
		"", "plain", "$5$abc$def", "$7$", "$7$101$salt", "$7$x$c2FsdA==$aGFzaA==", "$7$0$c2FsdA==$aGFzaA==",
		"$7$99999999$c2FsdA==$aGFzaA==", "$7$101$!!$aGFzaA==", "$7$101$$aGFzaA==", "$6$c2FsdA==$c2hvcnQ=",
	} {
		if ok, err := Verify("x", h); ok || !errors.Is(err, ErrBadHash) {
			t.Errorf("Verify(x, %q) = %v, %v; want ErrBadHash", h, ok, err)
		}
	}
}

// TestMosquittoPasswdAgrees: when mosquitto_passwd is installed, a hash it
// writes for a fresh password verifies (the vectors above are fixed ones).
func TestMosquittoPasswdAgrees(t *testing.T) {
	bin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Skip("mosquitto_passwd is not installed")
	}
	file := filepath.Join(t.TempDir(), "pw")
	pass := "tok-" + strings.Repeat("ab", 32)
	if out, err := exec.Command(bin, "-c", "-b", file, "box-1", pass).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	h := ParsePasswd(b)["box-1"]
	if ok, err := Verify(pass, h); !ok || err != nil {
		t.Fatalf("Verify(mosquitto_passwd's %q) = %v, %v", h, ok, err)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("x", mosq7)
	f.Add("x", mosq6)
	f.Add("", "$7$1$AA==$AA==")
	f.Fuzz(func(t *testing.T, password, hash string) {
		ok, err := Verify(password, hash)
		if ok && err != nil {
			t.Fatalf("Verify = true with error %v", err)
		}
	})
}
