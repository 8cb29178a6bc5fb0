package ingest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/loa-commune/loa/internal/mediatest"
)

// needFFmpeg skips without ffmpeg and espeak-ng (`make test` installs them).
func needFFmpeg(t testing.TB) {
	t.Helper()
	mediatest.Need(t, "ffmpeg", "ffprobe", "espeak-ng")
}

// speech writes a few seconds of Vietnamese speech into dir.
func speech(t testing.TB, dir string) string {
	t.Helper()
	return mediatest.Speech(t, filepath.Join(dir, "speech.wav"),
		"Thông báo của ủy ban nhân dân xã: sáng thứ hai tiêm vắc xin cho trẻ em dưới năm tuổi tại trạm y tế.")
}

func testPipeline(t testing.TB) *Pipeline {
	o := DefaultOptions()
	o.Timeout = time.Minute
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	return New(o)
}

func TestCheck(t *testing.T) {
	needFFmpeg(t)
	if err := testPipeline(t).Check(context.Background()); err != nil {
		t.Fatalf("Check with Debian's ffmpeg: %v", err)
	}
	o := DefaultOptions()
	o.FFmpeg = "no-such-ffmpeg-here"
	err := New(o).Check(context.Background())
	if !errors.Is(err, ErrNoFFmpeg) {
		t.Fatalf("Check without ffmpeg = %v, want ErrNoFFmpeg", err)
	}
}

// TestRenderFormats renders what staff upload, from every source format,
// and checks the Opus file with ffmpeg: its codec, its length and its
// loudness.
func TestRenderFormats(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	src := speech(t, dir)
	p := testPipeline(t)
	cases := []struct {
		name, codec string
		args        []string
	}{
		{"mpeg1.mp3", "mp3", []string{"-ar", "44100", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k"}},
		{"mpeg2.mp3", "mp3", []string{"-ar", "22050", "-ac", "1", "-c:a", "libmp3lame", "-b:a", "32k"}},
		{"mpeg25.mp3", "mp3", []string{"-ar", "8000", "-ac", "1", "-c:a", "libmp3lame", "-b:a", "8k"}},
		{"voice.m4a", "aac", []string{"-ar", "44100", "-ac", "1", "-c:a", "aac", "-b:a", "64k"}},
		{"note.opus", "opus", []string{"-c:a", "libopus", "-b:a", "24k"}},
		{"old.wma", "wmav2", []string{"-c:a", "wmav2", "-b:a", "64k"}},
		{"radio.ogg", "vorbis", []string{"-c:a", "libvorbis", "-q:a", "3"}},
		{"studio.flac", "flac", []string{"-ac", "2", "-c:a", "flac"}},
		{"video.mkv", "aac", []string{"-f", "lavfi", "-i", "color=c=blue:s=64x64:d=6", "-c:v", "mpeg4", "-c:a", "aac", "-shortest"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := filepath.Join(dir, tc.name)
			args := append([]string{"-i", src}, tc.args...)
			mediatest.FFmpeg(t, append(args, in)...)
			out := filepath.Join(dir, tc.name+".out.opus")
			res, err := p.Render(context.Background(), in, out)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if res.Codec != tc.codec {
				t.Errorf("codec %q, want %q", res.Codec, tc.codec)
			}
			if res.Duration < 5*time.Second || res.Duration > 10*time.Second {
				t.Errorf("duration %v, want the speech's 5-10 s", res.Duration)
			}
			probe, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name,channels,sample_rate", "-of", "csv=p=0", out).Output()
			if err != nil || string(bytes.TrimSpace(probe)) != "opus,48000,1" {
				t.Errorf("ffprobe of the output: %q, %v; want opus,48000,1", probe, err)
			}
			if got := mediatest.LUFS(t, out); got < -17 || got > -15 {
				t.Errorf("the output measures %.2f LUFS, want -16 ± 1", got)
			}
			if res.Output.Integrated < -17 || res.Output.Integrated > -15 {
				t.Errorf("loudnorm's output report %.2f LUFS, want -16 ± 1", res.Output.Integrated)
			}
		})
	}
}

// TestRenderLoudness: a whisper and a shout come out at the same loudness,
// and the original's loudness is reported as ffmpeg's ebur128 measures it.
func TestRenderLoudness(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	src := speech(t, dir)
	p := testPipeline(t)
	var outs []float64
	for _, gain := range []string{"-22dB", "+6dB"} {
		in := filepath.Join(dir, "speech"+gain+".wav")
		mediatest.FFmpeg(t, "-i", src, "-af", "volume="+gain+",alimiter=limit=0.97", in)
		want := mediatest.LUFS(t, in)
		out := filepath.Join(dir, "out"+gain+".opus")
		res, err := p.Render(context.Background(), in, out)
		if err != nil {
			t.Fatalf("Render %s: %v", gain, err)
		}
		if d := res.Source.Integrated - want; d < -0.5 || d > 0.5 {
			t.Errorf("%s: source loudness %.2f LUFS, ebur128 says %.2f", gain, res.Source.Integrated, want)
		}
		outs = append(outs, mediatest.LUFS(t, out))
		t.Logf("%s: in %.2f LUFS, out %.2f LUFS (%s)", gain, want, outs[len(outs)-1], res.Normalization)
	}
	if d := outs[0] - outs[1]; d < -0.5 || d > 0.5 {
		t.Errorf("quiet and loud come out %.2f LU apart, want within 0.5", d)
	}
}

// TestRenderRefuses: what cannot be played gets one clear error and leaves
// no output behind it that looks whole.
func TestRenderRefuses(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	src := speech(t, dir)
	m4a := filepath.Join(dir, "good.m4a")
	mediatest.FFmpeg(t, "-i", src, "-c:a", "aac", "-b:a", "64k", m4a)
	whole, _ := os.ReadFile(m4a)
	truncated := filepath.Join(dir, "truncated.m4a")
	os.WriteFile(truncated, whole[:len(whole)/3], 0o644)
	text := filepath.Join(dir, "notes.mp3")
	os.WriteFile(text, bytes.Repeat([]byte("Họp thôn lúc 8 giờ sáng mai.\n"), 200), 0o644)
	silent := filepath.Join(dir, "silent.wav")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "anullsrc=r=22050:cl=mono", "-t", "5", silent)
	noAudio := filepath.Join(dir, "video-only.mkv")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "color=c=red:s=64x64:d=2", "-c:v", "mpeg4", noAudio)
	broken := filepath.Join(dir, "broken.opus")
	mediatest.FFmpeg(t, "-i", src, "-c:a", "libopus", "-b:a", "32k", broken)
	b, _ := os.ReadFile(broken)
	damagePage(t, b, 3)
	os.WriteFile(broken, b, 0o644)

	p := testPipeline(t)
	for _, tc := range []struct {
		name, path string
		want       error
	}{
		{"truncated m4a", truncated, ErrNotAudio},
		{"text file", text, ErrNotAudio},
		{"silence", silent, ErrSilent},
		{"no sound track", noAudio, ErrNotAudio},
		{"broken Opus page", broken, ErrNotAudio},
		{"missing file", filepath.Join(dir, "nothing.mp3"), ErrNotAudio},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Render(context.Background(), tc.path, filepath.Join(dir, "out.opus"))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Render = %v, want %v", err, tc.want)
			}
			t.Logf("error: %v", err)
		})
	}
}

// damagePage flips bytes in the body of the n-th Ogg page (0 is the first).
func damagePage(t testing.TB, b []byte, n int) {
	t.Helper()
	at := -1
	for i := 0; i < n+1; i++ {
		k := bytes.Index(b[at+1:], []byte("OggS"))
		if k < 0 {
			t.Fatalf("the file has fewer than %d pages", n+1)
		}
		at += 1 + k
	}
	for i := at + 40; i < at+70 && i < len(b); i++ {
		b[i] ^= 0x5a
	}
}

// TestRenderTooLong: a four-hour recording is refused after decoding just
// past the limit, not four hours of it.
func TestRenderTooLong(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	// MP3 frames stand alone: a 10 s file repeated is a valid 4-hour MP3
	// (8 kHz, 8 kbit/s: 14 MB), made in a moment.
	short := filepath.Join(dir, "short.mp3")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=8000:duration=10", "-c:a", "libmp3lame",
		"-b:a", "8k", "-write_xing", "0", "-id3v2_version", "0", short)
	frames, _ := os.ReadFile(short)
	long := filepath.Join(dir, "four-hours.mp3")
	os.WriteFile(long, bytes.Repeat(frames, 4*360), 0o644)

	o := DefaultOptions()
	o.MaxDuration = 2 * time.Minute // the limit's value does not matter; this keeps the test quick
	res, err := New(o).Render(context.Background(), long, filepath.Join(dir, "out.opus"))
	if !errors.Is(err, ErrTooLong) {
		t.Fatalf("Render = %+v, %v; want ErrTooLong", res, err)
	}
	if res.Duration > o.MaxDuration+2*time.Second {
		t.Errorf("decoded %v of it, want just past the %v limit", res.Duration, o.MaxDuration)
	}
}

// TestRenderHungFFmpeg: an ffmpeg that hangs is killed at the deadline,
// with the processes it started.
func TestRenderHungFFmpeg(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "ffmpeg")
	pidFile := filepath.Join(dir, "child.pid")
	script := "#!/bin/sh\nsleep 600 &\necho $! > " + pidFile + "\nwait\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	o := DefaultOptions()
	o.FFmpeg, o.Timeout = fake, time.Second
	_, err := New(o).Render(context.Background(), fake, filepath.Join(dir, "out.opus"))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Render = %v, want ErrTimeout", err)
	}
	pid, _ := os.ReadFile(pidFile)
	if n, err := strconv.Atoi(string(bytes.TrimSpace(pid))); err == nil {
		// SIGKILL went to the whole group; the child dies when the kernel
		// next runs it, which on a loaded machine is not at once.
		running := func() bool {
			st, err := os.ReadFile("/proc/" + strconv.Itoa(n) + "/stat")
			return err == nil && !bytes.Contains(st, []byte(") Z "))
		}
		for deadline := time.Now().Add(5 * time.Second); running() && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if running() {
			t.Errorf("the hung ffmpeg's child %d still runs", n)
		}
	} else {
		t.Fatalf("the fake ffmpeg did not start its child: %q", pid)
	}
}
