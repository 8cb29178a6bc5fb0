package mediatest

import (
	"math"
	"math/cmplx"
)

// BestMatch finds where got sits against ref (got[i] is ref[i+lag]; a
// negative lag when got starts before ref) and returns the normalised
// correlation of got with ref there, over their overlap. The lag of the
// highest cross-correlation is found by FFT at a quarter of the rate,
// then refined.
func BestMatch(ref, got []float32) (lag int, corr float64) {
	const k = 4
	rough := crossLag(decimate(ref, k), decimate(got, k))
	corr = math.Inf(-1)
	for l := rough*k - 2*k; l <= rough*k+2*k; l++ {
		if c := correlationAt(ref, got, l); c > corr {
			lag, corr = l, c
		}
	}
	return lag, corr
}

// correlationAt is the correlation of got with ref shifted by lag.
func correlationAt(ref, got []float32, lag int) float64 {
	switch {
	case lag < 0 && -lag < len(got):
		return Correlation(ref, got[-lag:])
	case lag >= 0 && lag < len(ref):
		return Correlation(ref[lag:], got)
	}
	return 0
}

// decimate averages each k samples into one.
func decimate(x []float32, k int) []float32 {
	out := make([]float32, len(x)/k)
	for i := range out {
		var sum float32
		for _, v := range x[i*k : i*k+k] {
			sum += v
		}
		out[i] = sum / float32(k)
	}
	return out
}

// crossLag is the lag of the highest cross-correlation of got against ref.
func crossLag(ref, got []float32) (lag int) {
	n := 1
	for n < len(ref)+len(got) {
		n <<= 1
	}
	a := make([]complex128, n)
	b := make([]complex128, n)
	for i, v := range ref {
		a[i] = complex(float64(v), 0)
	}
	for i, v := range got {
		b[i] = complex(float64(v), 0)
	}
	fft(a, false)
	fft(b, false)
	for i := range a {
		a[i] *= cmplx.Conj(b[i])
	}
	fft(a, true)
	best := math.Inf(-1)
	for l := -len(got) + 1; l < len(ref); l++ {
		if v := real(a[(l+n)%n]); v > best {
			best, lag = v, l
		}
	}
	return lag
}

// Correlation is the normalised correlation of a and b over their common
// length.
func Correlation(a, b []float32) float64 {
	n := min(len(a), len(b))
	var ab, aa, bb float64
	for i := range n {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// fft transforms x in place (radix 2; len(x) a power of two), inverse
// scaled by 1/n.
func fft(x []complex128, inverse bool) {
	n := len(x)
	for i, j := 1, 0; i < n; i++ {
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j ^= bit
		if i < j {
			x[i], x[j] = x[j], x[i]
		}
	}
	sign := -1.0
	if inverse {
		sign = 1
	}
	for size := 2; size <= n; size <<= 1 {
		w := cmplx.Exp(complex(0, sign*2*math.Pi/float64(size)))
		for start := 0; start < n; start += size {
			wk := complex(1, 0)
			for k := range size / 2 {
				u, v := x[start+k], x[start+k+size/2]*wk
				x[start+k], x[start+k+size/2] = u+v, u-v
				wk *= w
			}
		}
	}
	if inverse {
		for i := range x {
			x[i] /= complex(float64(n), 0)
		}
	}
}
