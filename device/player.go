package device

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/loa-commune/loa/audio"
	"github.com/loa-commune/loa/protocol"
)

// ToneSiren is the tone an item may ask for (PlanItem.Tone): a siren
// synthesized on the box and played before the item's media.
const ToneSiren = "siren"

// sirenDuration is how long the siren plays before the media.
const sirenDuration = 8 * time.Second

// playJob is one item for the player goroutine.
type playJob struct {
	ctx    context.Context
	item   protocol.PlanItem
	path   string // decoded PCM in the sink's format
	volume int
}

// playResult is what the sink said.
type playResult struct {
	id  string
	err error
}

// volumeFor is the volume an item plays at: emergencies at the emergency
// volume whatever the box's volume, others at the item's override or the
// box's volume.
func (a *Agent) volumeFor(it protocol.PlanItem) int {
	if it.Priority == protocol.Emergency {
		return a.emergencyVolume()
	}
	if it.Volume != nil {
		return *it.Volume
	}
	return a.volume()
}

// volume is the box's volume from the controller's config.
func (a *Agent) volume() int {
	if a.config == nil {
		return DefaultVolume
	}
	return a.config.Config.Volume
}

// emergencyVolume is the config's emergency volume; 0 means unset, since a
// silent emergency is never what anyone wants.
func (a *Agent) emergencyVolume() int {
	if a.config == nil || a.config.Config.EmergencyVolume == 0 {
		return DefaultEmergencyVolume
	}
	return a.config.Config.EmergencyVolume
}

// startPlayback hands an item to the player: idle → playing.
func (a *Agent) startPlayback(it protocol.PlanItem, now time.Time) {
	rec := a.items[it.ID]
	ctx, cancel := context.WithCancel(a.runCtx)
	a.queue.start(it, now, cancel)
	rec.Started = true
	a.setStatus(it, rec, protocol.EventPlaying, "")
	path := a.pcmPath(it.Media.SHA256)
	t := time.Now()
	_ = os.Chtimes(path, t, t) // last use, for the cache's LRU
	a.playReq <- playJob{ctx: ctx, item: it, path: path, volume: a.volumeFor(it)}
	a.publishState(now)
}

// onPlayed takes the player's result: playing/stopping → idle.
func (a *Agent) onPlayed(r playResult) {
	a.queue.finished()
	defer a.publishState(a.clock.Now())
	rec := a.items[r.id]
	if rec == nil || rec.Status != protocol.EventPlaying {
		return // cancelled while playing; already reported
	}
	it, ok := a.live[r.id]
	if !ok {
		it = protocol.PlanItem{ID: r.id}
	}
	if r.err == nil {
		delete(a.errs, "sink")
		a.setStatus(it, rec, protocol.EventPlayed, "")
		return
	}
	a.errs["sink"] = r.err.Error()
	a.setStatus(it, rec, protocol.EventFailed, r.err.Error())
}

// runPlayer plays one job at a time until ctx is done.
func (a *Agent) runPlayer(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-a.playReq:
			err := a.play(j)
			select {
			case a.playRes <- playResult{id: j.item.ID, err: err}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// play streams the item to the sink: chime, then the media Repeat times with
// GapMS of silence between, all through the volume gain. The PCM file is
// read as it plays, never loaded whole.
func (a *Agent) play(j playJob) error {
	f, err := os.Open(j.path)
	if err != nil {
		return fmt.Errorf("play %s: %w", j.item.ID, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("play %s: %w", j.item.ID, err)
	}
	bpf := int64(a.format.BytesPerFrame())
	size := fi.Size() / bpf * bpf

	var parts []io.Reader
	if j.item.Chime {
		parts = append(parts, bytes.NewReader(audio.Chime(a.format)))
	}
	switch j.item.Tone {
	case "":
	case ToneSiren:
		parts = append(parts, bytes.NewReader(audio.Siren(a.format, sirenDuration)))
	default:
		a.log.Warn("unknown tone; playing the media only", keyItem, j.item.ID, "tone", j.item.Tone)
	}
	gap := a.format.Bytes(time.Duration(j.item.GapMS) * time.Millisecond)
	for i := range max(j.item.Repeat, 1) {
		if i > 0 && gap > 0 {
			parts = append(parts, io.LimitReader(zeros{}, gap))
		}
		parts = append(parts, io.NewSectionReader(f, 0, size))
	}
	pcm := audio.NewGainReader(io.MultiReader(parts...), audio.VolumeGain(j.volume))
	if err := a.sink.Play(j.ctx, j.item.ID, pcm); err != nil {
		return fmt.Errorf("play %s: %w", j.item.ID, err)
	}
	return nil
}

// zeros yields silence: float32 zero is all-zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
