// Package local is Kite's "local" registry, the embedded default: a
// registry for one machine kept as files in a directory, with no server
// to run.
//
// Every registered instance is one small JSON file,
// <dir>/<service>/<addr>.json, holding the instance, the owner's pid and
// the time-to-live it promises. The owner refreshes the file's mtime
// every ttl/3 (its heartbeat). Readers ignore an entry whose owner
// process is dead (kill(pid, 0) fails with ESRCH) or whose heartbeat is
// older than its ttl, so a crashed or hung server drops out without
// anyone deregistering it; entries of dead processes are deleted by the
// next reader. Files are written to a temporary name and renamed into
// place, so readers never see half an entry, and removals of entries
// owned by others happen under an flock on the service directory, so
// garbage collection never deletes an entry that was just re-registered.
//
// Watches poll the service directory (every 200ms by default) and
// deliver a snapshot only when the set of live instances changed;
// changes made through the same registry wake its watchers at once.
package local
