package ops

import (
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kiterpc/kite/internal/testkit"
)

const chromiumPath = "/usr/bin/chromium"

// pageStack serves the page with a server, a client with traffic and a
// registry, so every section has something to show.
func pageStack(t *testing.T) (*served, string) {
	t.Helper()
	freshMetrics(t)
	dir := t.TempDir()
	path := writeFile(t, dir, "kite.hcl", hcl(adminStack, "{{DIR}}", dir))
	s := serve(t, path, "echo", &echo{name: "a"})
	c, err := s.st.Client("echo")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 5 {
		var r EchoResp
		require.NoError(t, c.Call(ctx, "Echo.Echo", &EchoReq{Text: "x"}, &r))
	}
	return s, "http://" + s.st.AdminAddr() + "/"
}

func TestStatusPageHTMLListsTheStack(t *testing.T) {
	s, url := pageStack(t)
	code, page := httpGet(t, url)
	require.Equal(t, 200, code)
	for _, want := range []string{
		"<h2>Servers</h2>", "<h2>Clients</h2>", "<h2>Registry view</h2>", "<h2>Plugins</h2>",
		// services and their methods
		"<b>Echo</b>", ">Echo<", ">Fail<", ">Slow<", "<b>Health</b>", ">Check<", ">Watch<",
		// the server's address, the client's instance, balancer and calls
		s.in.Addr, "weighted", "version=v1",
		// plugins with kind, name and source
		"registry</td><td><b>local</b>", "filter</td><td><b>metrics</b>", "builtin",
		"healthy",
	} {
		assert.Contains(t, page, want)
	}
	assert.NotContains(t, page, "<script", "the page needs no JavaScript")
}

// TestStatusPageRendersInChromium takes a screenshot of the status page
// with headless Chromium and checks it is a real rendering: the right
// size and far from one flat colour. The PNG stays in $KITE_ARTIFACTS
// (CI keeps it as an artifact; it is never committed).
func TestStatusPageRendersInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		testkit.Missing(t, "%s is absent (%v): run scripts/ensure-chromium.sh to install Debian's chromium (make test does)", chromiumPath, err)
	}
	_, url := pageStack(t)
	shot := filepath.Join(artifactDir(t), "status.png")
	_ = os.Remove(shot)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromiumPath,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--screenshot="+shot, "--window-size=1280,900", url)
	// Its own process group, so a hung browser and its helpers are ended
	// together — and only they.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "chromium: %s", out)
	t.Logf("chromium took %s", time.Since(start).Round(time.Millisecond))

	f, err := os.Open(shot)
	require.NoError(t, err, "chromium wrote no screenshot: %s", out)
	defer f.Close()
	fi, err := f.Stat()
	require.NoError(t, err)
	img, err := png.Decode(f)
	require.NoError(t, err)
	b := img.Bounds()
	assert.Equal(t, image.Rect(0, 0, 1280, 900), b, "window size")

	colours := map[uint32]int{}
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[(r>>8)<<16|(g>>8)<<8|bl>>8]++
		}
	}
	samples := ((b.Dx() + 2) / 3) * ((b.Dy() + 2) / 3)
	top := 0
	for _, n := range colours {
		top = max(top, n)
	}
	t.Logf("screenshot %s: %d bytes, %d distinct colours, the commonest covers %.0f%%", shot, fi.Size(), len(colours), 100*float64(top)/float64(samples))
	assert.Greater(t, fi.Size(), int64(10_000), "a rendered page, not a blank image")
	assert.Greater(t, len(colours), 16, "text, badges and backgrounds give many colours")
	assert.Less(t, float64(top)/float64(samples), 0.95, "not one flat colour")
	// The dark header band (#15213b) is at the top.
	r, g, bl, _ := img.At(640, 10).RGBA()
	assert.True(t, r>>8 < 0x40 && g>>8 < 0x40 && bl>>8 < 0x70, "header colour at the top: %x %x %x", r>>8, g>>8, bl>>8)
}
