package bench

import (
	"math/bits"
	"time"
)

// histSub is the number of sub-buckets per power of two: values are kept
// to within 1/histSub (about 3%).
const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	histBuckets = (64 - histSubBits) * histSub
)

// hist is a log-linear histogram of durations in nanoseconds. It is not
// safe for concurrent use: each client owns one, and they are merged after
// the clients have stopped.
type hist struct {
	counts [histBuckets]uint32
	n      uint64
	max    int64
}

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1
	return (shift+1)*histSub + int(v>>uint(shift)) - histSub
}

// histValue is the upper bound of bucket i.
func histValue(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	shift := i/histSub - 1
	m := uint64(histSub + i%histSub)
	return int64((m+1)<<uint(shift) - 1)
}

func (h *hist) record(d int64) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))]++
	h.n++
	if d > h.max {
		h.max = d
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile returns the value at q (0..1), an upper bound within one bucket.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return time.Duration(min(histValue(i), h.max))
		}
	}
	return time.Duration(h.max)
}
