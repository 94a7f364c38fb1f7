package linediff

import "testing"

func TestUnified(t *testing.T) {
	tests := []struct {
		name, from, to string
		old, new       string
		want           string
	}{
		{"one hunk", "a/x", "b/x", "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n", "a\nb\nc\nd\nE\nf\ng\nh\ni\nj\nk\n",
			"--- a/x\n+++ b/x\n@@ -2,9 +2,10 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n i\n j\n+k\n"},
		{"two hunks", "x", "x", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n", "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n",
			"--- x\n+++ x\n@@ -1,3 +1,4 @@\n+0\n 1\n 2\n 3\n@@ -9,3 +10,4 @@\n 9\n 10\n 11\n+12\n"},
		{"new file", "/dev/null", "b/x", "", "a\n", "--- /dev/null\n+++ b/x\n@@ -0,0 +1 @@\n+a\n"},
		{"removed file", "a/x", "/dev/null", "a\nb\n", "", "--- a/x\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-a\n-b\n"},
		{"no change", "x", "x", "a\n", "a\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Unified(tt.from, tt.to, []byte(tt.old), []byte(tt.new)); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
