// Package repro holds reproducers of bugs found by the chaos suite (issue
// 8) in packages the suite does not own. They fail until the bug is fixed,
// so they build only with -tags repro:
//
//	go test -tags repro ./test/repro/
//
// Move each into its package's tests once fixed.
package repro
