package audio

// Remix returns a Stream of src with channels channels:
//   - the same count: src itself;
//   - mono to N: the one channel on every output channel;
//   - N to mono: the average of all channels;
//   - N to M, M < N: output channel o is the average of input channels
//     o, o+M, o+2M, ... (5.1 to stereo folds centre and surround into
//     left and right; no channel is lost or doubled in level);
//   - N to M, M > N: input channels repeat cyclically (stereo to 4 is
//     L R L R).
//
// channels outside 1..MaxChannels returns src unchanged.
func Remix(src Stream, channels int) Stream {
	in := src.Format().Channels
	if in == channels || channels < 1 || channels > MaxChannels || in < 1 {
		return src
	}
	// weights[o] lists the input channels averaged into output o.
	sources := make([][]int, channels)
	for o := range sources {
		switch {
		case in == 1:
			sources[o] = []int{0}
		case channels < in:
			for i := o; i < in; i += channels {
				sources[o] = append(sources[o], i)
			}
		default:
			sources[o] = []int{o % in}
		}
	}
	f := src.Format()
	f.Channels = channels
	return &remixer{src: src, format: f, in: in, sources: sources}
}

type remixer struct {
	src     Stream
	format  Format
	in      int
	sources [][]int
	buf     []float32
}

func (m *remixer) Format() Format { return m.format }
func (m *remixer) Codec() string  { return m.src.Codec() }

func (m *remixer) Read(p []float32) (int, error) {
	out := m.format.Channels
	frames := len(p) / out
	if frames == 0 {
		return 0, nil
	}
	if need := frames * m.in; cap(m.buf) < need {
		m.buf = make([]float32, need)
	}
	n, err := m.src.Read(m.buf[:frames*m.in])
	got := n / m.in
	for f := 0; f < got; f++ {
		fr := m.buf[f*m.in : (f+1)*m.in]
		dst := p[f*out : (f+1)*out]
		for o, srcs := range m.sources {
			if len(srcs) == 1 {
				dst[o] = fr[srcs[0]]
				continue
			}
			var sum float32
			for _, i := range srcs {
				sum += fr[i]
			}
			dst[o] = sum / float32(len(srcs))
		}
	}
	return got * out, err
}
