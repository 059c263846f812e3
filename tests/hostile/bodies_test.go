package hostile

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/core/protocol"
	s2 "github.com/kiterpc/kite/plugins/compress-s2"
	zstd "github.com/kiterpc/kite/plugins/compress-zstd"
	"github.com/kiterpc/kite/spi"
)

// bomb is a body of zeros just under the 4 MiB max frame, compressed.
func bomb(t *testing.T, c spi.Compressor) []byte {
	t.Helper()
	b, err := c.Compress(nil, make([]byte, 4*mib-8<<10))
	require.NoError(t, err)
	return b
}

// sendAll writes n requests back to back on c and collects the status of
// each answer.
func sendAll(t *testing.T, c *conn, n int, method string, body []byte, o reqOpts) map[spi.Code]int {
	t.Helper()
	for i := 1; i <= n; i++ {
		c.request(uint32(i), method, body, o)
	}
	codes := map[spi.Code]int{}
	for i := 0; i < n; i++ {
		r, err := c.next(10 * time.Second)
		require.NoError(t, err, "after %d answers", i)
		require.Equal(t, protocol.TypeResponse, r.typ)
		codes[r.code]++
	}
	return codes
}

// TestCompressedBodiesWithinBudget is issue 20 item 3: 64 zstd bodies of
// a few hundred bytes that each inflate to 4 MiB, to a handler that holds
// its request for 300 ms. The server's body budget (64 MiB here) is
// charged before decompressing, so the peak stays near the budget instead
// of 64 x 4 MiB twice over.
func TestCompressedBodiesWithinBudget(t *testing.T) {
	opts, _ := json.Marshal(map[string]any{"BodyMemory": 64 * mib})
	s := startServer(t, spec{Options: opts, Token: token})
	z := zstd.New()
	defer z.Close()
	body := bomb(t, z)
	c := dial(t, s.addr, "")
	codes := sendAll(t, c, 64, "H.Hold", body, reqOpts{auth: token, compress: z.ID()})
	growth := s.peakGrowth(t)
	t.Logf("64 x %d-byte zstd bodies (4 MiB each decompressed): answers %v; server peak RSS +%.1f MiB", len(body), codes, float64(growth)/mib)
	require.Positive(t, codes[spi.OK], "calls within the budget must succeed")
	require.Equal(t, 64, codes[spi.OK]+codes[spi.ResourceExhausted], "answers %v", codes)
	require.Less(t, growth, int64(150*mib*raceMemFactor), "peak RSS must stay near the 64 MiB budget")
}

// TestUnauthenticatedBodiesNotDecompressed is issue 20 item 3's second
// half: without a token, compressed bodies must be refused by the auth
// filter before anything is decompressed or decoded.
func TestUnauthenticatedBodiesNotDecompressed(t *testing.T) {
	s := startServer(t, spec{Token: token})
	body := bomb(t, s2.New())
	c := dial(t, s.addr, "")
	codes := sendAll(t, c, 64, "H.Echo", body, reqOpts{compress: spi.CompressS2})
	growth := s.peakGrowth(t)
	t.Logf("64 x %d-byte s2 bodies without a token: answers %v; server peak RSS +%.1f MiB", len(body), codes, float64(growth)/mib)
	require.Equal(t, map[spi.Code]int{spi.Unauthenticated: 64}, codes)
	require.Less(t, growth, int64(32*mib*raceMemFactor), "refused bodies must not be decompressed")
}
