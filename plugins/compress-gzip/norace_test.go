//go:build !race

package gzip_test

const raceEnabled = false
