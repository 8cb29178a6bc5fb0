package controller

import (
	"context"

	"github.com/loa-commune/loa/api"
	"github.com/loa-commune/loa/media"
)

// convertMedia makes the renditions of media stored before loudness
// normalisation: on the first start after the upgrade, one file at a time,
// with a replan after each so boxes move to it. Until then their plans name
// the original, which the controller still serves, so they keep playing.
func (c *Controller) convertMedia(ctx context.Context, ms *media.Store) {
	list, err := c.store.MediaWithoutPlay(ctx)
	if err != nil {
		c.log.Error("list media to convert", "err", err)
		return
	}
	if len(list) == 0 {
		return
	}
	c.log.Info("converting media to normalised Opus for the boxes", "files", len(list))
	done := 0
	for _, m := range list {
		f, err := ms.Render(ctx, m.SHA256, m.Size)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			c.log.Warn("media not converted; boxes keep getting the original", "media", m.SHA256, "name", m.Name, "err", err)
			continue
		}
		rec := api.MediaRecord(f)
		if err := c.store.SetMediaPlay(ctx, m.SHA256, rec.Loudness, rec.TruePeak, rec.Play); err != nil {
			c.log.Error("record converted media", "media", m.SHA256, "err", err)
			continue
		}
		done++
		c.bc.Replan()
	}
	c.log.Info("media converted", "files", done, "of", len(list))
}
