//go:build race

package gzip_test

// raceEnabled: under -race sync.Pool drops a share of what is put back,
// so pooled readers and writers are rebuilt and allocation counts are
// not the production ones.
const raceEnabled = true
