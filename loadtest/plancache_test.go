package loadtest

import (
	"testing"
	"time"

	"github.com/loa-commune/loa/protocol"
)

func TestPlanCacheDecodesEachPayloadOnce(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	plan := protocol.Plan{Target: "all", Generated: t0, Items: []protocol.PlanItem{}}
	payload, err := protocol.Encode(protocol.KindPlan, "xa", 1, t0, plan)
	if err != nil {
		t.Fatal(err)
	}
	c := newPlanCache("xa")
	first, err := c.decode(payload)
	if err != nil || first.Target != "all" {
		t.Fatalf("decode: %+v, %v", first, err)
	}
	again, err := c.decode(append([]byte(nil), payload...))
	if err != nil || again != first {
		t.Fatalf("the same bytes decoded again (%p, %p, %v), want the cached plan", again, first, err)
	}
	if _, err := c.decode(payload[:len(payload)-2]); err == nil {
		t.Fatal("a cut payload decoded")
	}
	if _, err := newPlanCache("other-site").decode(payload); err == nil {
		t.Fatal("another site's plan was accepted")
	}
}
