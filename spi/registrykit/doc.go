// Package registrykit holds the parts of a spi.Registry that every
// registry plugin would otherwise write again: copying and comparing
// instance snapshots, and the two ways of turning a backend's view into
// a spi.Watcher.
//
//   - Feed suits a registry whose watch runs a goroutine that follows the
//     backend (an etcd watch stream, ZooKeeper watches, a polling loop):
//     the goroutine Publishes each snapshot, Next hands out the newest
//     one not yet seen, Close ends the feed with the error Next returns
//     from then on.
//   - PollWatcher suits a registry that can read a service cheaply and
//     knows when to read again (a directory with a change signal, an
//     in-process table): it reads inside Next, so an unread watcher
//     holds no goroutine.
//
// Both deliver only changed snapshots (compared field by field with
// Equal, so a nil and an empty Tags or Metadata count as the same) and
// hand every caller its own deep copy.
//
// The package imports only spi; it is meant for plugin authors, like
// spitest is for their tests.
package registrykit
