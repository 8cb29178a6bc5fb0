// Package device is the loudspeaker-box agent (loa-agent): it keeps an MQTT
// session with the controller, reconciles the retained plans it follows into
// one merged plan, downloads and decodes their media into a local cache,
// plays each item on the box's audio.Sink when it is due, and answers back
// with events and a retained heartbeat.
//
// # What it owns
//
//   - The MQTT session (paho, persistent, client id loa-<site>-<id>, with a
//     retained offline will on its state topic). It subscribes to its config
//     topic, and once it has a config to plan/all, plan/device/<id> and
//     plan/group/<g> for each of its groups.
//   - <cache>/state.json: the latest plan per target, the device config and
//     the local status of every item, written by temp file, fsync and
//     rename, so a box that boots without network still plays its plan.
//   - <cache>/outbox/<seq>.ev: every answer-back event, written durably
//     (temp file, fsync, rename) before it is handed to MQTT and removed
//     once the broker acknowledged it (outbox.go). What is left is sent
//     again, oldest first and byte for byte, when the agent starts and on
//     every reconnect; the controller drops duplicates. It holds at most
//     10,000 events or 10 MB; when full the oldest non-final events go
//     first. A corrupt record is logged and removed.
//   - <cache>/media/<sha256> (verified downloads) and <cache>/pcm/<sha256>.f32
//     (decoded once into the sink's format), kept under cache_max_mb by
//     evicting least recently used files no item refers to.
//   - The play queue (queue.go), the one place that decides what the
//     single output plays: highest priority first, then an item waiting to
//     go on after a preemption, then earliest start, then first come. A
//     higher item preempts a lower one (at its start; a live session's a
//     cue ahead, so that it starts on time rather than at its live point):
//     the lower one fades out within
//     tens of milliseconds, reports preempted, and once nothing higher is
//     due follows its on_preempt rule (restart, the default; resume from
//     where it was cut, with a short fade-in; drop, reported cancelled).
//     A newer emergency replaces an older one (cancelled, "replaced by
//     <id>"). Items due in the config's quiet hours are missed, except
//     emergencies.
//   - Emergencies: played at the emergency volume whatever the box's or
//     the item's volume, each repeat preceded by an alert tone synthesized
//     on the box (PlanItem.Tone, the siren by default; audio.AlertTone) and
//     half a second of silence. An emergency starts when due even if its
//     media is not fetched yet: the tone plays and the message joins the
//     first repeat that finds it decoded. If it never does, the item is
//     reported failed, saying the message could not be fetched. Tone-only
//     items (no media) fetch nothing.
//   - Live sessions (stream.go, streamplay.go): an item with Stream set
//     plays the session's signed packets of Opus frames instead of media
//     (no tone, chime or repeat; it is ready at once and queues by its
//     priority like any item). From streamFollowLead before its cue until
//     it is final the box subscribes (QoS 0) to the session's topic and
//     keeps a jitter buffer of the frames received, placed by their stamps
//     (a frame's position is its packet's time plus the frames before it,
//     in samples at 48 kHz from the item's start, rounded the same way on
//     every box). It plays from the item's start, or, joining late (a
//     restart, a reconnect, after a preemption), from the live point: the
//     first 20 ms step from the start at least cueLead ahead. The player
//     reads the session no further ahead of real time than its read-ahead
//     (200 ms, 400 ms for a sound card); a frame that comes later is
//     dropped; a missing one is concealed by libopus for up to 120 ms, then
//     silent, and the frames after a gap sound at their own places; when
//     time sync corrects the clock by 20 ms or more during a play, the
//     output moves to where the session is by the new estimate. A play
//     ends at the session's end (its end packet or Stream.Ends in a newer
//     plan) or at the item's expiry; the final answer says how much the
//     box sounded and missed (HeardMS, MissedMS, over every run). Forged
//     packets are never played and are reported like any refused message.
//   - Updates of the agent itself (update.go): the signed config's offer
//     is judged, its build for this box's arch fetched and verified into
//     <cache>/agent (package selfupdate) and installed as the trial; Run
//     then returns ErrRestart. A build on trial confirms itself once the
//     broker has its state after a signed config. State.Update reports how
//     the last offer went, State.Arch the box's arch.
//
// A sink that records (wav:DIR) gets one file per play: the item id for
// the first, "<id>#2" (a file named <id>_2.wav) and so on after a
// preemption or a restart of the box.
//
// It does not own the sink: the caller opens it before New and closes it
// after Run returns.
//
// # Concurrency
//
// One goroutine, the loop inside Run, makes every decision and owns all
// plan, item, media and queue state; nothing else touches it. The others
// only do slow work and report back over channels:
//
//   - paho's goroutines decode incoming messages (handleMessage) and put
//     valid ones in an inbox that keeps the newest per topic and never
//     blocks; live session packets skip the inbox: paho's goroutine checks
//     their signature and puts their frames in the session's jitter buffer;
//   - fetch workers download and decode media, one job at a time each;
//   - the player calls Sink.Play for one item at a time; for a live
//     session it takes frames from the session's buffer as their time
//     comes, and when the play ends writes what it sounded to the play's
//     streamStats, which the loop reads once the play is over;
//   - the outbox worker performs MQTT publishes and subscriptions in order,
//     so a slow network never stalls scheduling.
//   - one short-lived watcher per event publish waits for paho's
//     acknowledgement and removes the event's record from the disk outbox
//     (a mutex guards it); Run ends them before it returns.
//
// The jitter buffers are the one piece of state those goroutines share: the
// set of them (streamSet) and each buffer (streamBuffer) have their own
// mutex. The loop makes and drops the buffers (syncStreams) and sets a
// session's end from the plan; paho's goroutine looks a buffer up and adds
// frames or the end packet; the player holds the buffer of the session it
// plays and takes frames from it, even after the loop dropped it (then no
// more come). No lock is held while waiting or decoding.
//
// Run starts all of them and returns only after they have ended; Close
// cancels Run and waits for it. The Clock decides every time-driven choice,
// so tests move time by hand; nothing is scheduled while the clock reads
// before Config.MinValidTime (state waiting-for-time).
package device
