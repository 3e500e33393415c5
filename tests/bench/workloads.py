"""CPU-bound workloads for `cargo xtask bench`, run by each interpreter
under the same qemu-user. `python workloads.py <name>` runs one and prints
the seconds it took (startup excluded); sizes are chosen for about a second
under emulation. Only the standard library is used."""

import sys
import time


def nbody(n=4000):
    import math

    pi, days = math.pi, 365.24
    bodies = [
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], 4 * pi * pi],
        [[4.84, -1.16, -0.10], [0.606 * days, 2.81 * days, -0.02 * days], 0.037],
        [[8.34, 4.12, -0.40], [-1.01 * days, 1.82 * days, 0.008 * days], 0.011],
        [[12.89, -15.11, -0.22], [1.08 * days, 0.868 * days, -0.01 * days], 0.0017],
        [[15.37, -25.91, 0.17], [0.979 * days, 0.594 * days, -0.034 * days], 0.002],
    ]
    pairs = [(bodies[i], bodies[j]) for i in range(5) for j in range(i + 1, 5)]
    dt = 0.01
    for _ in range(n):
        for ((r1, v1, m1), (r2, v2, m2)) in pairs:
            dx, dy, dz = r1[0] - r2[0], r1[1] - r2[1], r1[2] - r2[2]
            mag = dt * ((dx * dx + dy * dy + dz * dz) ** -1.5)
            b1, b2 = m1 * mag, m2 * mag
            v1[0] -= dx * b2; v1[1] -= dy * b2; v1[2] -= dz * b2
            v2[0] += dx * b1; v2[1] += dy * b1; v2[2] += dz * b1
        for (r, v, m) in bodies:
            r[0] += dt * v[0]; r[1] += dt * v[1]; r[2] += dt * v[2]


def float_points(n=40000):
    from math import cos, sin, sqrt

    class Point:
        __slots__ = ("x", "y", "z")

        def __init__(self, i):
            self.x = x = sin(i)
            self.y = cos(i) * 3
            self.z = (x * x) / 2

        def normalize(self):
            norm = sqrt(self.x * self.x + self.y * self.y + self.z * self.z)
            self.x /= norm; self.y /= norm; self.z /= norm

    points = [Point(i) for i in range(n)]
    for p in points:
        p.normalize()
    return max(p.x for p in points)


def json_dumps_loads(n=300):
    import json

    doc = {"key%d" % i: [i, str(i) * 3, {"nested": [1.5, True, None, "x" * 20]}] for i in range(100)}
    for _ in range(n):
        assert json.loads(json.dumps(doc)) == doc


def regex(n=400):
    import re

    text = ("GET /index.html HTTP/1.1 200 512 user=alice@example.org ip=192.168.1.%d\n" * 50) % tuple(range(50))
    pats = [re.compile(p) for p in (r"(\w+)@(\w+)\.(\w+)", r"ip=(\d+\.){3}\d+", r"HTTP/\d\.\d (\d{3})", r"^GET (\S+)")]
    count = 0
    for _ in range(n):
        for p in pats:
            count += len(p.findall(text)) if p.pattern[0] != "^" else len(p.findall(text, re.M))
    return count


def sqlite(n=3000):
    import sqlite3

    db = sqlite3.connect(":memory:")
    db.execute("create table t (id integer primary key, name text, value real)")
    db.executemany("insert into t (name, value) values (?, ?)", (("name%d" % i, i * 0.5) for i in range(n)))
    for i in range(200):
        db.execute("select count(*), avg(value) from t where name like ?", ("name%d%%" % (i % 10),)).fetchone()
    db.execute("create index ti on t(name)")
    for i in range(n):
        db.execute("select value from t where name = ?", ("name%d" % i,)).fetchone()


def richards(n=2):
    # A compact task scheduler in the spirit of the classic Richards benchmark.
    import collections

    Task = collections.namedtuple("Task", "prio work")
    for _ in range(n):
        queue = [Task(i % 7, i) for i in range(2000)]
        done = 0
        while queue:
            queue.sort(key=lambda t: (t.prio, t.work))
            t = queue.pop(0)
            if t.work % 3 and t.prio < 6:
                queue.append(Task(t.prio + 1, t.work // 2))
            done += 1
            if len(queue) > 500:
                queue = queue[:500]
    return done


def pidigits(n=1500):
    # Unbounded spigot: big-integer arithmetic.
    q, r, t, k, m, x = 1, 0, 1, 1, 3, 3
    digits = []
    while len(digits) < n:
        if 4 * q + r - t < m * t:
            digits.append(m)
            q, r, t, k, m, x = 10 * q, 10 * (r - m * t), t, k, (10 * (3 * q + r)) // t - 10 * m, x
        else:
            q, r, t, k, m, x = q * k, (2 * q + r) * x, t * x, k + 1, (q * (7 * k + 2) + r * x) // (t * x), x + 2
    return digits


WORKLOADS = {
    "nbody": nbody,
    "float": float_points,
    "json": json_dumps_loads,
    "regex": regex,
    "sqlite": sqlite,
    "richards": richards,
    "pidigits": pidigits,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in WORKLOADS:
        sys.exit("usage: workloads.py {%s}" % "|".join(WORKLOADS))
    start = time.perf_counter()
    WORKLOADS[sys.argv[1]]()
    print("%.6f" % (time.perf_counter() - start))
