// Package bridge runs Kite's conformance suites (spi/spitest) on every
// plugin of this repository served out of process: TestMain builds each
// plugins/*/cmd/* main once into a temporary directory and hashes it, and
// each test loads the binary with spi/plugin.Load — checksum, handshake,
// automatic mTLS, exactly as a host declaring it in kite.hcl would — and
// runs its kind's suite through the bridge:
//
//   - registries: local, static, zk, etcd and nacos (against the
//     nacostest double); zk and etcd need KITE_ZK_ADDR / KITE_ETCD_ADDR
//     (scripts/services.sh sets them for `make test`; CI always does) and
//     skip with a message otherwise;
//   - balancers: weighted, round_robin, random, p2c and consistent_hash
//     (whose picks through the bridge must equal its compiled-in picks,
//     key for key);
//   - compressors: snappy, s2, zstd, gzip, whose bridged output must also be
//     read by the compiled-in implementation and vice versa;
//   - codecs: json and hessian (generic canonical form) and proto (typed
//     canonical form through plugin.CanonicalCodec);
//   - filters: log, recover, metrics, tracing, auth, ratelimit with the
//     filter suite, bridged and compiled in (the filters' own tests do not
//     run it); jwt and validate likewise (filter_jwt_validate_test.go).
//
// The other kinds' compiled-in suites run in the plugins' own packages.
package bridge
