// Interop is the Java side of codec-hessian's cross-language test
// (interop_test.go). Run as `java kite.interop.Interop DIR`, it reads
// each go-*.bin file in DIR with Caucho's Hessian2Input and prints one
// line describing the object ("name description"), then writes the
// java-*.bin files the Go test decodes, with Hessian2Output.
package kite.interop;

import com.caucho.hessian.io.Hessian2Input;
import com.caucho.hessian.io.Hessian2Output;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Date;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

public class Interop {
  public static void main(String[] args) throws Exception {
    File dir = new File(args[0]);
    String[] names = new File(dir, "go-files.txt").exists()
        ? new String(java.nio.file.Files.readAllBytes(new File(dir, "go-files.txt").toPath()), "UTF-8").trim().split("\n")
        : new String[0];
    for (String n : names) {
      try (InputStream f = new FileInputStream(new File(dir, n + ".bin"))) {
        Hessian2Input in = new Hessian2Input(f);
        Object o = in.readObject();
        System.out.println(n + " " + describe(o));
      } catch (Exception e) {
        System.out.println(n + " ERROR " + e);
      }
    }

    User ada = new User();
    ada.name = "Ada Lovelace \u00e9\u65e5\u672c \ud83d\ude00";
    ada.age = 36;
    ada.id = 1L << 40;
    ada.score = 97.25;
    ada.active = true;
    ada.tags = new ArrayList<>(Arrays.asList("admin", "beta"));
    ada.attrs = new HashMap<>();
    ada.attrs.put("zone", "eu-west-1");
    ada.avatar = new byte[] {0, 1, 2, (byte) 0xff};
    ada.created = new Date(1764849600123L);
    ada.friend = new User();
    ada.friend.name = "Charles";
    ada.friend.age = 79;
    write(dir, "java-user", ada);

    User loop = new User();
    loop.name = "loop";
    loop.friend = loop; // a back-reference: Hessian writes a ref
    write(dir, "java-cyclic", loop);

    Map<String, Object> m = new HashMap<>();
    m.put("int", 7);
    m.put("long", 1L << 35);
    m.put("double", 2.5);
    m.put("string", "s");
    m.put("bool", false);
    m.put("null", null);
    m.put("list", Arrays.asList(1, "two", 3.0));
    m.put("nested", new HashMap<>(Map.of("k", "v")));
    write(dir, "java-map", m);

    List<User> users = new ArrayList<>();
    users.add(ada.friend);
    users.add(ada.friend); // the same object twice: a ref
    write(dir, "java-list", users);
  }

  static void write(File dir, String name, Object o) throws Exception {
    try (OutputStream f = new FileOutputStream(new File(dir, name + ".bin"))) {
      Hessian2Output out = new Hessian2Output(f);
      out.writeObject(o);
      out.close();
    }
  }

  static String describe(Object o) {
    if (o == null) {
      return "null";
    }
    if (o instanceof User) {
      return o.toString();
    }
    if (o instanceof Map) {
      StringBuilder b = new StringBuilder("Map{");
      for (Map.Entry<?, ?> e : new TreeMap<Object, Object>((Map<?, ?>) o).entrySet()) {
        b.append(e.getKey()).append('=').append(describe(e.getValue())).append(';');
      }
      return b.append('}').toString();
    }
    if (o instanceof List) {
      StringBuilder b = new StringBuilder("List[");
      for (Object e : (List<?>) o) {
        b.append(describe(e)).append(';');
      }
      return b.append(']').toString();
    }
    if (o instanceof byte[]) {
      return "bytes" + Arrays.toString((byte[]) o);
    }
    if (o instanceof Object[]) {
      StringBuilder b = new StringBuilder(o.getClass().getComponentType().getSimpleName() + "[");
      for (Object e : (Object[]) o) {
        b.append(describe(e)).append(';');
      }
      return b.append(']').toString();
    }
    if (o instanceof Date) {
      return "Date:" + ((Date) o).getTime();
    }
    return o.getClass().getSimpleName() + ":" + o;
  }
}

class User implements java.io.Serializable {
  String name;
  int age;
  long id;
  double score;
  boolean active;
  List<String> tags;
  Map<String, String> attrs;
  byte[] avatar;
  User friend;
  Date created;

  public String toString() {
    return "User{name=" + name + ",age=" + age + ",id=" + id + ",score=" + score + ",active=" + active
        + ",tags=" + Interop.describe(tags) + ",attrs=" + Interop.describe(attrs)
        + ",avatar=" + Interop.describe(avatar)
        + ",friend=" + (friend == this ? "<self>" : Interop.describe(friend))
        + ",created=" + Interop.describe(created) + "}";
  }
}
