//go:build !unix

package local

// Without kill(pid, 0) and flock, liveness rests on heartbeats alone and
// renames are the only write barrier.

func pidAlive(int) bool              { return true }
func pidNamespace() string           { return "" }
func lockDir(string) (func(), error) { return func() {}, nil }
func checkOwner(string) error        { return nil }
func pruneDir(string)                {}
