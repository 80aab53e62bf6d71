"""Write a change to the GitOps repository: clone, edit, compile, commit, push (or open a pull request).

Used by the promote step and by the CLI's ``--commit``. :func:`publish` runs one edit to completion:

1. the edit function reads the clone and edits files (it returns None when there is nothing to change);
2. the compiler runs in-process on the clone (``specs/`` → the Project's ``repo.path``), so the state and the
   output it implies land in one commit and ``llmops check`` passes on it;
3. ``git add`` of the edited paths and the output folder, a commit by the given author;
4. mode ``push``: push to the watched branch. A rejected push (another writer got there first) fetches,
   resets the clone to the remote branch and runs the edit again on what is there now, at most
   ``max_attempts`` times, then fails with :class:`PushConflict`.
   Mode ``pullRequest``: force-push the commit to the branch ``llmops/rollout/<policy>-<environment>`` (the
   base branch plus this one commit) and open a pull request through the forge's API (GitHub's
   ``POST /repos/{owner}/{repo}/pulls``); an open pull request for that branch is reused. When the branch
   already proposes the same change (the commit trailer ``Llmops-Change`` is equal) nothing is pushed, so a
   pull request waiting for review is not rewritten every run.

Credentials: for ``https`` remotes a token is read from an environment variable given by name and handed to
git through ``GIT_ASKPASS`` (a script that prints the variable, written outside the clone), so the token is
never in the remote URL, ``.git/config``, the command line or any file. Credential helpers are switched off
for these commands, so none can store it either.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

GIT_TIMEOUT_S = 300
FORGE_TIMEOUT_S = 30
CHANGE_TRAILER = "Llmops-Change"
DEFAULT_USERNAME = "x-access-token"  # GitHub's user name for a token; GitLab and Gitea accept any name
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# What git prints when the remote branch moved under us (a non-fast-forward, or a lost compare-and-swap).
_REJECTED = re.compile(r"\[rejected\]|\(fetch first\)|non-fast-forward|\(stale info\)|cannot lock ref|"
                       r"failed to update ref|incorrect old value", re.IGNORECASE)


class GitError(Exception):
    """A git command or the forge failed; the message is one line, without credentials."""


class PushConflict(GitError):
    """The branch kept moving: every attempt's push was rejected."""


@dataclass(frozen=True)
class Author:
    """Who commits (author and committer)."""

    name: str = "llmops-promote"
    email: str = "llmops-promote@users.noreply.llmops.dev"


@dataclass(frozen=True)
class Remote:
    """The repository ArgoCD watches: clone URL, branch, and the environment variable holding a token."""

    url: str
    branch: str
    token_env: str | None = None
    username: str = DEFAULT_USERNAME


@dataclass(frozen=True)
class PullRequestTarget:
    """Where to open a pull request instead of pushing to the watched branch.

    ``api_url`` is the forge's REST base (``https://api.github.com``, or ``https://<host>/api/v3`` for GitHub
    Enterprise); ``repository`` is ``owner/name``; ``branch`` the head branch to push."""

    api_url: str
    repository: str
    token_env: str
    branch: str


@dataclass(frozen=True)
class Change:
    """What an edit did: the commit message, the edited paths (relative to the clone), and an identity of the
    resulting state (without times), written as a commit trailer and compared in the pull-request mode."""

    message: str
    paths: list[str]
    identity: str = ""


@dataclass(frozen=True)
class PublishResult:
    """How :func:`publish` ended. ``outcome``: ``unchanged`` (the edit changed nothing), ``committed`` (and
    not pushed, as asked), ``pushed`` (to the
    watched branch), ``proposed`` (pushed to the pull-request branch) or ``already-proposed`` (that branch
    already carries this change); ``attempts`` counts edits run."""

    outcome: Literal["unchanged", "committed", "pushed", "proposed", "already-proposed"]
    attempts: int
    change: Change | None = None
    commit: str | None = None
    pull_request_url: str | None = None


def _secret(token_env: str) -> str:
    if not ENV_NAME.fullmatch(token_env):
        raise GitError(f"`{token_env}` is not an environment variable name")
    value = os.environ.get(token_env, "")
    if not value.strip():
        raise GitError(f"environment variable {token_env} (the token) is not set or empty")
    return value.strip()


@dataclass
class Repository:
    """A clone of :class:`Remote` in ``path``, and the environment its git commands run in."""

    path: Path
    remote: Remote
    env: dict[str, str] = field(default_factory=dict)
    private_dir: Path | None = None  # holds the askpass script; removed by close()
    owned: bool = True
    """A clone of our own, which a rejected push may reset; False for a person's checkout (:meth:`open`)."""

    @classmethod
    def clone(cls, remote: Remote, path: Path) -> Repository:
        """Clone ``remote``'s branch into ``path`` (which must not exist or be empty). Raises GitError."""
        env = dict(os.environ)
        env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "", "LC_ALL": "C"})
        private_dir: Path | None = None
        if remote.token_env:
            _secret(remote.token_env)  # fail early and clearly when it is missing
            private_dir = Path(tempfile.mkdtemp(prefix="llmops-git-"))
            script = private_dir / "askpass.sh"
            # The script prints the variable named here; the token itself is never written anywhere.
            script.write_text('#!/bin/sh\ncase "$1" in\n  Username*) printf \'%s\\n\' "$LLMOPS_GIT_USERNAME" ;;\n'
                              f'  *) printf \'%s\\n\' "${remote.token_env}" ;;\nesac\n', encoding="utf-8")
            script.chmod(stat.S_IRWXU)
            env.update({"GIT_ASKPASS": str(script), "LLMOPS_GIT_USERNAME": remote.username})
        repository = cls(path, remote, env, private_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            repository._run(["clone", "--quiet", "--no-tags", "--single-branch", "--branch", remote.branch, "--",
                             remote.url, str(path)], cwd=path.parent)
        except BaseException:
            repository.close()
            raise
        return repository

    @classmethod
    def open(cls, path: Path, remote_name: str = "origin") -> Repository:
        """A person's existing checkout (the CLI's ``--commit``): its current branch and ``remote_name``'s URL,
        with the person's own git configuration and credentials. Never reset: a rejected push fails instead of
        retrying, so no local work is lost. Raises GitError when ``path`` is not a checkout on a branch."""
        env = {**os.environ, "LC_ALL": "C"}
        probe = cls(path, Remote("", ""), env, owned=False)
        branch = probe.git("symbolic-ref", "--quiet", "--short", "HEAD").strip()
        url = probe._run(["remote", "get-url", remote_name], check=False).stdout.strip()
        return cls(path, Remote(url, branch), env, owned=False)

    def close(self) -> None:
        """Remove the askpass script's folder (the clone stays where the caller put it)."""
        if self.private_dir is not None:
            shutil.rmtree(self.private_dir, ignore_errors=True)
            self.private_dir = None

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _run(self, args: list[str], cwd: Path | None = None, check: bool = True, stdin: str | None = None,
             extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        command = ["git", "-c", "credential.helper=", "-c", "commit.gpgSign=false", *args]
        try:
            result = subprocess.run(command, cwd=cwd or self.path, env={**self.env, **(extra_env or {})},
                                    input=stdin, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False)
        except FileNotFoundError:
            raise GitError("git is not installed (apt-get install git)") from None
        except subprocess.TimeoutExpired:
            raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT_S}s") from None
        if check and result.returncode != 0:
            raise GitError(f"git {args[0]} failed: {_last_lines(result.stderr or result.stdout)}")
        return result

    def git(self, *args: str) -> str:
        """Run ``git <args>`` in the clone; its stdout. Raises GitError with git's message."""
        return self._run(list(args)).stdout

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def reset_to_remote(self) -> None:
        """Fetch the watched branch and make the clone exactly that (edits and commits of ours dropped).
        Refused (GitError) on a person's checkout."""
        if not self.owned:
            raise GitError("refusing to reset a checkout that is not a clone of our own")
        self.git("fetch", "--quiet", "--no-tags", "origin", f"+refs/heads/{self.remote.branch}:"
                 f"refs/remotes/origin/{self.remote.branch}")
        self.git("reset", "--quiet", "--hard", f"origin/{self.remote.branch}")
        self.git("clean", "--quiet", "-fdx")

    def commit(self, change: Change, paths: list[str], author: Author | None) -> str | None:
        """Stage ``paths`` (additions, edits and deletions) and commit as ``author`` (None: git's configured
        identity); the new commit, or None when nothing differs from HEAD. Hooks run only in a person's
        checkout."""
        self.git("add", "--all", "--", *paths)
        if self._run(["diff", "--cached", "--quiet"], check=False).returncode == 0:
            return None
        message = change.message.rstrip() + "\n"
        if change.identity:
            message += f"\n{CHANGE_TRAILER}: {change.identity}\n"
        identity = {"GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email,
                    "GIT_COMMITTER_NAME": author.name, "GIT_COMMITTER_EMAIL": author.email} if author else {}
        self._run(["commit", "--quiet", *(["--no-verify"] if self.owned else []), "--file", "-"], stdin=message,
                  extra_env=identity)
        return self.head()

    def push(self, refspec: str, force: bool = False) -> None:
        """Push; raises PushConflict when the remote moved (retry after :meth:`reset_to_remote`), GitError on
        anything else (authentication, permissions, a hook that declined)."""
        result = self._run(["push", "--porcelain", *(["--force"] if force else []), "origin", refspec], check=False)
        if result.returncode == 0:
            return
        output = f"{result.stdout}\n{result.stderr}"
        if _REJECTED.search(output):
            raise PushConflict(f"push to {self.remote.branch} rejected: {_last_lines(output)}")
        raise GitError(f"git push failed: {_last_lines(result.stderr or result.stdout)}")

    def remote_branch_message(self, branch: str) -> str | None:
        """The message of the head commit of ``branch`` on the remote, or None when there is no such branch."""
        if not self.git("ls-remote", "--heads", "origin", f"refs/heads/{branch}").strip():
            return None
        self.git("fetch", "--quiet", "--no-tags", "--depth", "1", "origin", f"refs/heads/{branch}")
        return self.git("log", "-1", "--format=%B", "FETCH_HEAD")


def _last_lines(text: str, limit: int = 400) -> str:
    """Git's message as one line: its last meaningful lines, shortened."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip() and not line.startswith("hint:")]
    line = " ".join(lines[-3:]) if lines else "no message"
    return line if len(line) <= limit else "…" + line[-limit:]


def trailer(message: str, key: str = CHANGE_TRAILER) -> str | None:
    """The value of trailer ``key`` in a commit message, or None."""
    for line in reversed(message.strip().splitlines()):
        if line.startswith(f"{key}: "):
            return line[len(key) + 2:].strip()
    return None


def compile_clone(clone: Path) -> str:
    """Compile ``clone/specs`` into the Project's output folder of the clone; that folder, relative to the clone.

    Raises ``CompileError`` (from the compiler) when the specs have errors."""
    from .api import compile_project, resolve_specs
    from .diagnostics import CompileError

    specs_dir = clone / "specs"
    graph, problems = resolve_specs(specs_dir)
    if graph is None:
        raise CompileError(problems)
    output = graph.project.spec.repo.path
    compile_project(specs_dir, clone / output)
    return output


Edit = Callable[[Path], "Change | None"]


def publish(repository: Repository, edit: Edit, author: Author | None, max_attempts: int = 5,
            pull_request: PullRequestTarget | None = None, title: str | None = None,
            push: bool = True) -> PublishResult:
    """Run ``edit`` on the clone, compile, commit and push (see the module docstring).

    ``edit(clone)`` edits files and returns a :class:`Change`, or None when nothing changes; it runs again
    after every rejected push, on the clone reset to the remote branch, so it must read the clone afresh.
    ``title`` is the pull request's title (default: the commit's subject); ``push=False`` only commits. In a
    person's checkout (:meth:`Repository.open`) a rejected push is not retried. Raises PushConflict after
    ``max_attempts`` rejected pushes, GitError when git or the forge fails, CompileError when the edited
    specs do not compile."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    for attempt in range(1, max_attempts + 1):
        change = edit(repository.path)
        if change is None:
            return PublishResult("unchanged", attempt)
        output = compile_clone(repository.path)
        commit = repository.commit(change, [*change.paths, output], author)
        if commit is None:
            return PublishResult("unchanged", attempt, change)
        if not push:
            return PublishResult("committed", attempt, change, commit)
        if pull_request is not None:
            return _propose(repository, pull_request, change, commit, attempt, title)
        try:
            repository.push(f"HEAD:refs/heads/{repository.remote.branch}")
        except PushConflict:
            if not repository.owned:
                raise PushConflict(f"push to {repository.remote.branch} was rejected: the branch moved; your "
                                   "commit is kept: pull, check the rollout again and push") from None
            if attempt == max_attempts:
                raise PushConflict(
                    f"push to {repository.remote.branch} was rejected {max_attempts} times: other writers keep "
                    "changing the branch; nothing was pushed, the next run decides again") from None
            repository.reset_to_remote()
            continue
        return PublishResult("pushed", attempt, change, commit)
    raise AssertionError("unreachable")


def _propose(repository: Repository, target: PullRequestTarget, change: Change, commit: str, attempt: int,
             title: str | None) -> PublishResult:
    existing = repository.remote_branch_message(target.branch)
    subject = title or change.message.strip().splitlines()[0]
    body = change.message.strip().split("\n", 1)[1].strip() if "\n" in change.message.strip() else ""
    if existing is not None and change.identity and trailer(existing) == change.identity:
        url = open_pull_request(target, repository.remote.branch, subject, body)
        return PublishResult("already-proposed", attempt, change, None, url)
    repository.push(f"HEAD:refs/heads/{target.branch}", force=True)  # the branch is ours: base + this commit
    url = open_pull_request(target, repository.remote.branch, subject, body)
    return PublishResult("proposed", attempt, change, commit, url)


def _forge_request(method: str, url: str, token: str, payload: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Accept": "application/vnd.github+json",
        "Authorization": f"Bearer {token}",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "llmops-compiler",
        **({"Content-Type": "application/json"} if data is not None else {}),
    })
    try:
        with urllib.request.urlopen(request, timeout=FORGE_TIMEOUT_S) as response:
            status, body = int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        status, body = int(exc.code), exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GitError(f"the forge API at {url.split('/repos/')[0]} is unreachable: {reason}") from None
    try:
        return status, json.loads(body) if body else None
    except json.JSONDecodeError:
        return status, body.decode(errors="replace")[:300]


def _forge_message(payload: Any) -> str:
    if isinstance(payload, dict):
        errors = "; ".join(str(error.get("message", error)) for error in payload.get("errors", [])
                           if isinstance(error, dict))
        return " ".join(part for part in (str(payload.get("message", "")), errors) if part)
    return str(payload)


def open_pull_request(target: PullRequestTarget, base: str, title: str, body: str) -> str:
    """Open a pull request of ``target.branch`` into ``base`` (GitHub REST ``POST /repos/{owner}/{repo}/pulls``)
    and return its web URL; when one is already open for the branch (HTTP 422), return that one's URL
    (``GET /repos/{owner}/{repo}/pulls?head=owner:branch&state=open``). Raises GitError otherwise."""
    token = _secret(target.token_env)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", target.repository):
        raise GitError(f"`{target.repository}` is not a repository such as `owner/name`")
    base_url = f"{target.api_url.rstrip('/')}/repos/{target.repository}/pulls"
    status, payload = _forge_request("POST", base_url, token, {
        "title": title, "head": target.branch, "base": base, "body": body, "maintainer_can_modify": True})
    if status == 201 and isinstance(payload, dict):
        return str(payload.get("html_url", ""))
    if status == 422:
        owner = target.repository.split("/")[0]
        query = urllib.parse.urlencode({"head": f"{owner}:{target.branch}", "base": base, "state": "open"})
        found_status, found = _forge_request("GET", f"{base_url}?{query}", token)
        if found_status == 200 and isinstance(found, list) and found:
            return str(found[0].get("html_url", ""))
    raise GitError(f"opening a pull request failed: HTTP {status}: {_forge_message(payload)}")


__all__ = ["Author", "Change", "GitError", "PublishResult", "PullRequestTarget", "PushConflict", "Remote",
           "Repository", "compile_clone", "open_pull_request", "publish", "trailer"]
