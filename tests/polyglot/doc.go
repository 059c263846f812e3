// Package polyglot tests plugins written in languages other than Go
// against a Kite host: the Python SDK in sdk/python and its two example
// plugins (the "header" filter and the "jsonfile" registry) are loaded
// through the bridge exactly as Go plugins are — from plugin.Load and
// from kite.hcl plugin blocks with command and files — and must pass the
// same spi/spitest conformance suites, serve real calls through a Kite
// server and client, be restarted after kill -9, and fail clearly when
// they break the handshake. The Node SDK in sdk/node serves the same
// header filter, which passes the filter suite too.
//
// The plugins run under Debian's /usr/bin/python3 with python3-grpcio,
// python3-protobuf and python3-cryptography (scripts/ensure-python.sh
// installs them). Without them the tests skip, except under CI=true,
// where they fail.
package polyglot
