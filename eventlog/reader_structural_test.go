package eventlog

import (
	"errors"
	"fmt"
	"testing"
)

func TestStructural(t *testing.T) {
	seg := func(err error) error {
		return &SegmentError{Segment: "00000000000000000001", Seq: 5, Err: err}
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"gap", seg(fmt.Errorf("%w: segment starts at index 9, want 5", ErrCorrupt)), true},
		{"wrapped gap", fmt.Errorf("scan: %w", seg(ErrCorrupt)), true},
		{"checksum", seg(fmt.Errorf("%w: %w", ErrCorrupt, ErrChecksum)), false},
		{"chain", seg(ErrChain), false},
		{"newer", seg(ErrNewerFormat), false},
		{"not located", ErrCorrupt, false},
		{"other", errors.New("x"), false},
	}
	for _, tt := range tests {
		if got := structural(tt.err); got != tt.want {
			t.Errorf("%s: structural(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
