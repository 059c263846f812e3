// Package resilience holds the client's defences against failing
// dependencies: retries with backoff and a budget, and per-endpoint
// circuit breaking. It imports only spi and the standard library; the
// client wires it around the balancer and the connection pool.
//
// # Retry rule
//
// A failed attempt is retried only when all of these hold, checked in
// this order by Retrier.Next:
//
//  1. attempts so far < max_attempts (default 3, the first included);
//  2. the failure is safe to retry (ShouldRetry):
//     - the request never reached the wire (sent = false) and the code is
//     Unavailable, ResourceExhausted or DeadlineExceeded: the server cannot
//     have acted on it (no connection, refused, GOAWAY before the write, a
//     local limit, a connect timeout);
//     - or the request was sent, the method is idempotent (listed in the
//     policy's `idempotent`, or the call carries metadata
//     kite-idempotent = "1"), and the code is Unavailable (connection
//     lost, server draining) or DeadlineExceeded of that attempt;
//     - never for any other code: NotFound, InvalidArgument, Internal and
//     the rest are answers, Canceled means the caller gave up, and a
//     non-idempotent request that was sent may already have done its work;
//  3. the caller's context is not done and its deadline would not pass
//     during the backoff wait;
//  4. the retry budget has a token (it is asked last because asking
//     spends one).
//
// The retry should go to another instance: the client adds the instances
// already tried to PickInfo.Exclude.
//
// # Backoff
//
// Backoff.Duration(n) for the n-th retry is uniform in
// [min, min(max, min·2^n)] ("full jitter" above the floor min): the first
// retry waits min..2·min, later ones spread over a doubling range capped
// at max. Configured as backoff = "10ms..1s".
//
// # Retry budget
//
// RetryBudget is a token bucket in the manner of Finagle and Envoy: each
// call deposits `budget` tokens (0.1 by default), each retry withdraws
// one, and min_retries_per_second tokens accrue on top (10 by default,
// the first second credited up front). Under a total outage retries add
// at most budget·calls + min_retries_per_second·seconds attempts, instead
// of multiplying the load on a struggling service by max_attempts.
//
// # Circuit breaking and outlier ejection
//
// Breaker watches one endpoint. It opens (ejects the endpoint) after
// ConsecutiveFailures failures in a row (5) or when the failure ratio over
// a sliding Window (10 s, 10 buckets) reaches FailureRatio (0.5) with at
// least MinRequests (20) calls. It stays open BaseEjection (30 s), doubled
// for each ejection that follows without MaxEjection (5 min) of health in
// between, up to MaxEjection. After that it is half-open: HalfOpenProbes
// (1) calls go through as probes; the first success closes it, a failure
// opens it again for longer. Which errors count as failures is the
// caller's call; Failure gives the usual answer (Unavailable,
// DeadlineExceeded, ResourceExhausted, Internal, Unknown, DataLoss).
// Breakers keeps one Breaker per address and reports every transition,
// for metrics; the client passes Breakers.AppendEjected to the balancer as
// PickInfo.Exclude so ejected endpoints are avoided while others remain.
//
// Every clock and random source is injectable, so the tests here are
// deterministic and never sleep.
package resilience
