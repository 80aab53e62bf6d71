"""Issue 13 ("fast in the PR loop"): every command timed on the example project and on a synthetic project of
1,000 specs, against a floor measured in the same run, plus growth with the number of specs.

    python benchmarks/compile_scale.py [--sizes 100,1000,5000] [--repeat 3] [--tmp DIR] [--no-parallel-probe]

Each figure is the fastest of ``--repeat`` runs of `python -m llmops_compiler.cli ...` in a fresh process
(interpreter start included), with its peak resident memory. Projects are written under ``--tmp`` (default
/dev/shm when it is writable, so that the disk of a shared machine does not decide the result), each in a git
repository whose committed generated/ is up to date, with a cache folder of its own (LLMOPS_CACHE_DIR).

Rows: `compile` with no cache into an empty folder (every file written), with no cache on an up-to-date
output, with a warm cache on an up-to-date output, and after one spec changed (a Prompt's template; for
1,000 specs also a Model) with and without the cache; `validate` and `check` with and without the cache;
`diff --base HEAD` with one spec changed, the base read from its committed output (with and without the cache)
and the base compiled (its committed output made stale). Then `kubectl kustomize` over every environment
folder of the same output, and the **floor**: a fresh Python process that composes the same spec files with
libyaml (`yaml.compose_all`, CSafeLoader) and writes the same output bytes. Budgets are the issue's; each
1,000-spec figure is also printed as a multiple of the floor.

Growth: for each of ``--sizes``, the cold compile, the up-to-date compile with a warm cache, the compile after
one Prompt changed, peak memory and time per spec. The compiler forks processes for large projects (see
LLMOPS_JOBS); the parallel probe times the cold 1,000-spec compile with one process and with two, beside two
busy loops that show how much of a second core the machine gives right now (other workers share it).
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import write_project

ROOT = Path(__file__).resolve().parents[1]
LLMOPS = [sys.executable, "-m", "llmops_compiler.cli"]
GIT_ENVIRONMENT = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
                   "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
FLOOR = """
import os, pickle, sys, yaml
specs, pack, out = sys.argv[1:4]
for root, dirs, files in os.walk(specs):
    dirs.sort()
    for name in sorted(files):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(root, name), encoding="utf-8") as handle:
                for _ in yaml.compose_all(handle.read(), Loader=yaml.CSafeLoader):
                    pass
with open(pack, "rb") as handle:
    files = pickle.load(handle)
made = set()
for path, content in files.items():
    target = os.path.join(out, path)
    parent = os.path.dirname(target)
    if parent not in made:
        os.makedirs(parent, exist_ok=True)
        made.add(parent)
    with open(target, "wb") as handle:
        handle.write(content)
"""
# (file under specs/, text, replacement): one spec changed, and changed back on the next run.
EXAMPLE_PROMPT_EDIT = ("prompts/answer.yaml", "asks: {{ question }}", "writes: {{ question }}")
EXAMPLE_CHAIN_EDIT = ("chains/support-answer.yaml", "topK: 5", "topK: 6")
SYNTHETIC_PROMPT_EDIT = ("prompts/prompt-0.yaml", "about topic 0.", "about topic zero.")
SYNTHETIC_MODEL_EDIT = ("models/model-0.yaml", "r: 8,", "r: 16,")
# The budgets in seconds: (example, 1,000 specs); None where the issue sets none.
BUDGETS: dict[str, tuple[float | None, float | None]] = {
    "compile": (0.5, 1.5), "validate": (0.4, 0.8), "check": (0.5, 1.5), "diff": (1.0, 3.0), "again": (None, 0.5),
}


@dataclass(frozen=True)
class Timing:
    seconds: float
    peak_mib: float


def run_once(command: list[str], environment: dict[str, str], cwd: Path | None = None) -> Timing:
    """Wall seconds and peak RSS of one child process (exit codes 0, 1 and 3 are results, not failures)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.returncode not in (0, 1, 3):
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}: {stderr}")
    return Timing(elapsed, usage.ru_maxrss / 1024)


def measure(command: list[str], environment: dict[str, str], repeat: int, cwd: Path | None = None,
            prepare: Callable[[], None] | None = None) -> Timing:
    """The fastest of ``repeat`` runs and the largest peak memory; ``prepare`` runs before each, untimed."""
    timings = []
    for _ in range(repeat):
        if prepare is not None:
            prepare()
        timings.append(run_once(command, environment, cwd))
    return Timing(min(t.seconds for t in timings), max(t.peak_mib for t in timings))


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={**os.environ, **GIT_ENVIRONMENT})


class Toggle:
    """One spec edited and restored in turn: each call flips it, so every timed run follows one change."""

    def __init__(self, specs: Path, edit: tuple[str, str, str]) -> None:
        self.path, self.old, self.new = specs / edit[0], edit[1], edit[2]
        assert self.old in self.path.read_text(), edit

    def flip(self) -> None:
        text = self.path.read_text()
        self.path.write_text(text.replace(self.old, self.new) if self.old in text else text.replace(self.new, self.old))

    def restore(self) -> None:
        self.path.write_text(self.path.read_text().replace(self.new, self.old))


class Project:
    """A spec project in a git repository whose committed generated/ is up to date, with its own cache."""

    def __init__(self, root: Path, specs_source: Path | None, size: int, repository: bool = True) -> None:
        self.root = root
        root.mkdir(parents=True)
        if specs_source is not None:
            shutil.copytree(specs_source, root / "specs")
        else:
            write_project(root, size)
        self.specs, self.output, self.cache = root / "specs", root / "generated", root / "cache"
        self.environment = {**os.environ, "LLMOPS_CACHE_DIR": str(self.cache), "PYTHONPATH": str(ROOT)}
        self.llmops(["compile", "--no-cache", "specs", "-o", "generated"])
        if repository:
            git(root, "init", "-q", "-b", "main")
            git(root, "add", "-A", "specs", "generated")
            git(root, "commit", "-qm", "base")
        self.spec_count = sum(1 for path in self.specs.rglob("*.yaml"))
        self.files = sum(1 for path in self.output.rglob("*") if path.is_file())

    def llmops(self, arguments: list[str]) -> None:
        subprocess.run([*LLMOPS, *arguments], cwd=self.root, env=self.environment, check=True,
                       stdout=subprocess.DEVNULL)

    def time(self, arguments: list[str], repeat: int, prepare: Callable[[], None] | None = None) -> Timing:
        return measure([*LLMOPS, *arguments], self.environment, repeat, self.root, prepare)

    def clear_cache(self) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)


def fresh_folder(folder: Path) -> Callable[[], None]:
    return lambda: shutil.rmtree(folder, ignore_errors=True)


def commands(project: Project, prompt_edit: tuple[str, str, str], other_edit: tuple[str, str, str], repeat: int,
             model_edit: tuple[str, str, str] | None = None) -> dict[str, Timing]:
    """Every row of the issue's table for one project (see the module docstring)."""
    rows: dict[str, Timing] = {}
    fresh = project.root / "fresh"
    rows["compile, no cache, empty output folder"] = project.time(
        ["compile", "--no-cache", "specs", "-o", "fresh"], repeat, fresh_folder(fresh))
    rows["compile, no cache, output up to date"] = project.time(["compile", "--no-cache"], repeat)
    project.clear_cache()
    project.llmops(["compile"])  # fills the cache
    rows["compile, warm cache, output up to date"] = project.time(["compile"], repeat)
    rows["validate, no cache"] = project.time(["validate", "--no-cache"], repeat)
    rows["validate, warm cache"] = project.time(["validate"], repeat)
    rows["check, no cache (up to date)"] = project.time(["check", "--no-cache"], repeat)
    rows["check, warm cache (up to date)"] = project.time(["check"], repeat)
    edits = [("a Prompt", prompt_edit)] + ([("a Model", model_edit)] if model_edit else [])
    for what, edit in edits:
        toggle = Toggle(project.specs, edit)
        rows[f"compile after {what} changed, warm cache"] = project.time(["compile"], repeat, toggle.flip)
        rows[f"compile after {what} changed, no cache"] = project.time(["compile", "--no-cache"], repeat,
                                                                       toggle.flip)
        toggle.restore()
        project.llmops(["compile"])
    toggle = Toggle(project.specs, prompt_edit)
    toggle.flip()  # one spec changed against HEAD, not compiled yet
    rows["diff --base HEAD, no cache (base: committed output)"] = project.time(
        ["diff", "--no-cache", "--base", "HEAD"], repeat)
    rows["diff --base HEAD, warm cache (base: committed output)"] = project.time(["diff", "--base", "HEAD"], repeat)
    project.llmops(["compile"])
    rows["diff --base HEAD, warm cache, change compiled"] = project.time(["diff", "--base", "HEAD"], repeat)
    toggle.restore()
    project.llmops(["compile"])
    # Make the committed output stale (another spec changed in a commit that did not compile): the base's
    # specs must then be compiled.
    stale = Toggle(project.specs, other_edit)
    stale.flip()
    git(project.root, "commit", "-qam", "specs changed, output not regenerated")
    stale.restore()
    toggle.flip()
    rows["diff --base HEAD, no cache (base compiled)"] = project.time(["diff", "--no-cache", "--base", "HEAD"],
                                                                      repeat)
    rows["diff --base HEAD, warm cache (base compiled)"] = project.time(["diff", "--base", "HEAD"], repeat)
    toggle.restore()
    git(project.root, "reset", "-q", "--hard", "HEAD~1")
    project.llmops(["compile", "--no-cache"])
    return rows


def kustomize_seconds(output: Path, repeat: int) -> float | None:
    if shutil.which("kubectl") is None:
        return None
    environments = sorted(path for path in output.iterdir() if (path / "kustomization.yaml").is_file())
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for environment in environments:
            subprocess.run(["kubectl", "kustomize", str(environment)], check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def floor(project: Project, repeat: int) -> Timing:
    """A fresh process that composes the spec files with libyaml and writes the output's bytes."""
    pack = project.root / "output.pickle"
    files = {path.relative_to(project.output).as_posix(): path.read_bytes()
             for path in sorted(project.output.rglob("*")) if path.is_file()}
    pack.write_bytes(pickle.dumps(files))
    out = project.root / "floor-out"
    return measure([sys.executable, "-c", FLOOR, str(project.specs), str(pack), str(out)], project.environment,
                   repeat, prepare=fresh_folder(out))


def growth(root: Path, size: int, repeat: int) -> dict[str, float]:
    project = Project(root / f"growth-{size}", None, size, repository=False)
    fresh = project.root / "fresh"
    cold = project.time(["compile", "--no-cache", "specs", "-o", "fresh"], repeat, fresh_folder(fresh))
    project.llmops(["compile"])
    warm = project.time(["compile"], repeat)
    toggle = Toggle(project.specs, SYNTHETIC_PROMPT_EDIT)
    again = project.time(["compile"], repeat, toggle.flip)
    base = floor(project, repeat)
    result = {"specs": size, "files": project.files, "cold": cold.seconds, "warm": warm.seconds,
              "again": again.seconds, "peak": max(cold.peak_mib, again.peak_mib), "floor": base.seconds}
    shutil.rmtree(project.root, ignore_errors=True)
    return result


BUSY_LOOPS = r"""
import os, time
def burn():
    total = 0
    for i in range(6_000_000):
        total += i
start = time.perf_counter(); burn(); burn(); one = time.perf_counter() - start
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    burn()
    os._exit(0)
burn()
os.waitpid(pid, 0)
print(one, time.perf_counter() - start)
"""


def parallel_probe(project: Project, repeat: int) -> str:
    """The cold compile of 1,000 specs in one process and in two (LLMOPS_JOBS), beside two busy loops that show
    how much of a second core the machine gives right now."""
    fresh = project.root / "fresh"
    timings = {}
    for jobs in (1, 2):
        environment = {**project.environment, "LLMOPS_JOBS": str(jobs)}
        timings[jobs] = measure([*LLMOPS, "compile", "--no-cache", "specs", "-o", "fresh"], environment, repeat,
                                project.root, fresh_folder(fresh)).seconds
    loops = subprocess.run([sys.executable, "-c", BUSY_LOOPS], capture_output=True, text=True, check=True)
    one, two = (float(value) for value in loops.stdout.split())
    return (f"compile, no cache, 1,000 specs: one process {timings[1]:.3f} s, two processes {timings[2]:.3f} s "
            f"(speed-up {timings[1] / timings[2]:.2f}x); two busy loops one after the other {one:.2f} s, side by "
            f"side {two:.2f} s (speed-up {one / two:.2f}x: the share of a second core this machine gives now)")


def default_tmp() -> str:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else tempfile.gettempdir()


def verdict(seconds: float, budget: float | None) -> str:
    if budget is None:
        return ""
    return "ok" if seconds <= budget else "OVER"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="synthetic project sizes for the growth table")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (the fastest is shown)")
    parser.add_argument("--tmp", default=default_tmp(), help="where the projects are written")
    parser.add_argument("--no-parallel-probe", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llmops-bench-", dir=args.tmp) as temporary:
        root = Path(temporary)
        example = Project(root / "example", ROOT / "specs", 0)
        large = Project(root / "s1000", None, 1000)
        rows_example = commands(example, EXAMPLE_PROMPT_EDIT, EXAMPLE_CHAIN_EDIT, args.repeat)
        rows_large = commands(large, SYNTHETIC_PROMPT_EDIT, SYNTHETIC_MODEL_EDIT, args.repeat, SYNTHETIC_MODEL_EDIT)
        floor_example, floor_large = floor(example, args.repeat), floor(large, args.repeat)
        kustomize = kustomize_seconds(large.output, 1)  # tens of seconds: once is enough for a ratio
        growth_rows = [growth(root, int(size), 1 if int(size) > 1000 else args.repeat)
                       for size in args.sizes.split(",")]
        parallel = None if args.no_parallel_probe else parallel_probe(large, args.repeat)

    print(f"llmops-compiler, issue 13 benchmark: {os.cpu_count()} cores, python {sys.version.split()[0]}, "
          f"projects in {args.tmp}, fastest of {args.repeat} runs, fresh process each (interpreter included)")
    print(f"example: {example.spec_count} spec files, {example.files} output files; synthetic: "
          f"{large.spec_count} spec files, {large.files} output files")
    print(f"floor (compose the spec files with libyaml + write the output bytes, fresh process): example "
          f"{floor_example.seconds:.3f} s, 1,000 specs {floor_large.seconds:.3f} s")
    print()
    header = (f"{'command':<55} {'example s':>9} {'budget':>6} {'':>4}  {'1,000 s':>8} {'budget':>6} {'':>4} "
              f"{'x floor':>7} {'peak MiB':>8}")
    print(header)
    print("-" * len(header))
    for name in rows_large:
        budget_key = ("again" if name.startswith("compile after") else name.split(",")[0].split(" ")[0])
        budget_example, budget_large = BUDGETS.get(budget_key, (None, None))
        small = rows_example.get(name)
        large_timing = rows_large[name]
        small_text = f"{small.seconds:>9.3f} {budget_example or '':>6} {verdict(small.seconds, budget_example):>4}" \
            if small else f"{'':>9} {'':>6} {'':>4}"
        print(f"{name:<55} {small_text}  {large_timing.seconds:>8.3f} {budget_large or '':>6} "
              f"{verdict(large_timing.seconds, budget_large):>4} {large_timing.seconds / floor_large.seconds:>7.1f} "
              f"{large_timing.peak_mib:>8.0f}")
    print()
    if kustomize is None:
        print("kubectl is not installed: no kustomize comparison")
    else:
        cold = rows_large["compile, no cache, empty output folder"].seconds
        warm = rows_large["compile, warm cache, output up to date"].seconds
        print(f"kubectl kustomize over every environment of the 1,000-spec output: {kustomize:.3f} s; compile / "
              f"kustomize: no cache {cold / kustomize:.3f}, warm cache {warm / kustomize:.3f} (budget 0.1)")
    print()
    print(f"{'specs':>6} {'files':>6} {'cold s':>8} {'us/spec':>8} {'warm s':>7} {'1 changed s':>11} "
          f"{'floor s':>8} {'cold/floor':>10} {'peak MiB':>8}")
    for row in growth_rows:
        print(f"{row['specs']:>6.0f} {row['files']:>6.0f} {row['cold']:>8.3f} {row['cold'] / row['specs'] * 1e6:>8.0f} "
              f"{row['warm']:>7.3f} {row['again']:>11.3f} {row['floor']:>8.3f} {row['cold'] / row['floor']:>10.1f} "
              f"{row['peak']:>8.0f}")
    if len(growth_rows) > 1:
        first, last = growth_rows[0], growth_rows[-1]
        ratio = last["specs"] / first["specs"]
        print(f"growth {first['specs']:.0f} -> {last['specs']:.0f} specs (x{ratio:.0f}): cold compile "
              f"x{last['cold'] / first['cold']:.1f}, floor x{last['floor'] / first['floor']:.1f} (linear: "
              f"x{ratio:.0f}; start-up makes small sizes look slower)")
        if len(growth_rows) > 2:
            middle = growth_rows[-2]
            print(f"growth {middle['specs']:.0f} -> {last['specs']:.0f} specs (x{last['specs'] / middle['specs']:.0f}):"
                  f" cold compile x{last['cold'] / middle['cold']:.2f}, compile after one change "
                  f"x{last['again'] / middle['again']:.2f}, warm up to date x{last['warm'] / middle['warm']:.2f}")
    if parallel:
        print()
        print("parallel probe: " + parallel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
