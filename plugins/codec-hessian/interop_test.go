package hessiancodec_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kiterpc/kite/internal/testkit"
	hessiancodec "github.com/kiterpc/kite/plugins/codec-hessian"
)

// hessianJar is where Debian's libhessian-java installs Caucho's Hessian.
const hessianJar = "/usr/share/java/hessian.jar"

// javaTools returns javac and java, failing under CI=true when they or
// the Hessian jar are missing (scripts/ensure-java.sh installs them for
// make test) and skipping otherwise.
func javaTools(t *testing.T) (javac, java string) {
	t.Helper()
	var missing []string
	javac, err := exec.LookPath("javac")
	if err != nil {
		missing = append(missing, "javac (default-jdk-headless)")
	}
	java, err = exec.LookPath("java")
	if err != nil {
		missing = append(missing, "java")
	}
	if _, err := os.Stat(hessianJar); err != nil {
		missing = append(missing, hessianJar+" (libhessian-java)")
	}
	if len(missing) > 0 {
		testkit.Missing(t, "the Java interop test needs %s: run scripts/ensure-java.sh (make test does)", strings.Join(missing, ", "))
	}
	return javac, java
}

// TestJavaInterop checks byte-level interoperability with Caucho's Hessian
// 4.0.38 (the reference implementation) on OpenJDK: Java decodes what this
// codec encodes, and this codec decodes what Java encodes, including a
// back-reference cycle and a shared object.
func TestJavaInterop(t *testing.T) {
	javac, java := javaTools(t)
	dir := t.TempDir()
	c := hessiancodec.New()

	// Go -> Java.
	goFiles := []struct {
		name string
		v    any
		want string
	}{
		{"go-user", &User{Name: "Grace \u00e9\u65e5 \U0001F600", Age: 85, ID: -1 << 41, Score: -0.5, Active: true,
			Tags: []string{"navy", "cobol"}, Attrs: map[string]string{"rank": "rear admiral"}, Avatar: []byte{9, 0, 0xfe},
			Friend:  &User{Name: "Howard", Age: 95},
			Created: time.UnixMilli(1764849600456)},
			"User{name=Grace \u00e9\u65e5 \U0001F600,age=85,id=-2199023255552,score=-0.5,active=true,tags=List[String:navy;String:cobol;]," +
				"attrs=Map{rank=String:rear admiral;},avatar=bytes[9, 0, -2],friend=User{name=Howard,age=95,id=0,score=0.0,active=false," +
				"tags=null,attrs=null,avatar=null,friend=null,created=null},created=Date:1764849600456}"},
		{"go-map", map[string]any{"i": int32(7), "l": int64(1) << 40, "d": 2.5, "s": "x", "b": true, "n": nil, "list": []any{"a", int32(1)}},
			"Map{b=Boolean:true;d=Double:2.5;i=Integer:7;l=Long:1099511627776;list=List[String:a;Integer:1;];n=null;s=String:x;}"},
		// A slice of a bound struct travels as a typed array: Java reads User[].
		{"go-list", []*User{{Name: "a"}, {Name: "b", Age: 2}},
			"User[User{name=a,age=0,id=0,score=0.0,active=false,tags=null,attrs=null,avatar=null,friend=null,created=null};" +
				"User{name=b,age=2,id=0,score=0.0,active=false,tags=null,attrs=null,avatar=null,friend=null,created=null};]"},
		// The generic form a bridged codec gets (JSON numbers as int64):
		// a map naming its class under "_class" is written as an object.
		{"go-classmap", map[string]any{hessiancodec.ClassKey: "kite.interop.User", "name": "via map", "age": int64(41), "tags": []any{"t"}},
			"User{name=via map,age=41,id=0,score=0.0,active=false,tags=List[String:t;],attrs=null,avatar=null,friend=null,created=null}"},
		{"go-scalars", []any{int64(-1), 1.0e300, "", []byte{}, false},
			"List[Long:-1;Double:1.0E300;String:;bytes[];Boolean:false;]"},
	}
	var names []string
	for _, f := range goFiles {
		b, err := c.Marshal(nil, f.v)
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.name+".bin"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, f.name)
	}
	if err := os.WriteFile(filepath.Join(dir, "go-files.txt"), []byte(strings.Join(names, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	classes := filepath.Join(dir, "classes")
	if out, err := exec.CommandContext(ctx, javac, "-d", classes, "-cp", hessianJar, "testdata/java/kite/interop/Interop.java").CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	// Hessian 4.0.38 reflects into java.base (StackTraceElement), which
	// JDK 17 closes unless opened.
	cmd := exec.CommandContext(ctx, java, "--add-opens", "java.base/java.lang=ALL-UNNAMED", "--add-opens", "java.base/java.util=ALL-UNNAMED",
		"-cp", classes+string(os.PathListSeparator)+hessianJar, "kite.interop.Interop", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("java: %v\n%s", err, stderr.String())
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, desc, _ := strings.Cut(line, " ")
		got[name] = desc
	}
	for _, f := range goFiles {
		if got[f.name] != f.want {
			t.Errorf("Java read %s as\n  %s\nwant\n  %s", f.name, got[f.name], f.want)
		}
	}

	// Java -> Go.
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var u User
	if err := c.Unmarshal(read("java-user"), &u); err != nil {
		t.Fatal(err)
	}
	want := User{Name: "Ada Lovelace \u00e9\u65e5\u672c \U0001F600", Age: 36, ID: 1 << 40, Score: 97.25, Active: true,
		Tags: []string{"admin", "beta"}, Attrs: map[string]string{"zone": "eu-west-1"}, Avatar: []byte{0, 1, 2, 0xff},
		Friend: &User{Name: "Charles", Age: 79}, Created: time.UnixMilli(1764849600123)}
	if !u.Created.Equal(want.Created) {
		t.Errorf("created %v, want %v", u.Created, want.Created)
	}
	u.Created = want.Created
	if !reflect.DeepEqual(u, want) {
		t.Errorf("java-user decoded as\n  %+v\nwant\n  %+v", u, want)
	}

	var loop *User
	if err := c.Unmarshal(read("java-cyclic"), &loop); err != nil {
		t.Fatal(err)
	}
	if loop == nil || loop.Name != "loop" || loop.Friend != loop {
		t.Errorf("java-cyclic: the back-reference did not come back as a cycle: %+v", loop)
	}

	var shared []*User
	if err := c.Unmarshal(read("java-list"), &shared); err != nil {
		t.Fatal(err)
	}
	if len(shared) != 2 || shared[0] != shared[1] || shared[0].Name != "Charles" {
		t.Errorf("java-list: want one object twice, got %+v", shared)
	}

	var m map[string]any
	if err := c.Unmarshal(read("java-map"), &m); err != nil {
		t.Fatal(err)
	}
	wantMap := map[string]any{"int": int32(7), "long": int64(1) << 35, "double": 2.5, "string": "s", "bool": false, "null": nil,
		"list": []any{int32(1), "two", 3.0}, "nested": map[string]any{"k": "v"}}
	if !reflect.DeepEqual(m, wantMap) {
		t.Errorf("java-map decoded as\n  %#v\nwant\n  %#v", m, wantMap)
	}
}
