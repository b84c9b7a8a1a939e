"""CustomResourceDefinitions generated from a project's own Go API types, with controller-gen, and cached.

``generate_crds(tool, module, version, api_packages)`` downloads ``module@version`` from the Go module
proxy, runs ``controller-gen crd paths=... output:crd:dir=...`` over the API packages inside a throwaway
module that requires it (so every dependency the types import is resolved from the module's own go.mod),
and keeps the YAML under ``<cache>/crds/<module>@<version>/<key>/``. A second call with the same
arguments finds the folder complete and does no work. The generator is the project's own toolchain
(controller-tools' ``crd`` generator), so the schemas are the structural schemas the project ships.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from chartproof import yamlio
from chartproof.errors import ToolchainError
from chartproof.paths import cache_dir
from chartproof.progress import Progress
from chartproof.toolchain import gobuild
from chartproof.toolchain.pins import ToolPin

COMPLETE = ".complete"  # written last: a folder without it is an interrupted generation


def package_paths(module: str, api_packages: Iterable[str]) -> list[str]:
    """Full import paths: a package given relative to the module root (``apis/v1``) is joined to it."""
    out = []
    for pkg in api_packages:
        pkg = pkg.strip().strip("/")
        if pkg.startswith("./"):
            pkg = pkg[2:]
        out.append(pkg if pkg == module or pkg.startswith(module + "/") else f"{module}/{pkg}")
    return out


def crd_cache_dir(module: str, version: str, api_packages: Iterable[str], options: Iterable[str] = (),
                  generator: str = "", *, cache: Path | None = None) -> Path:
    """Where the CRDs of ``module@version`` for these packages and options live in the tool cache."""
    packages = package_paths(module, api_packages)
    key = hashlib.sha256(json.dumps([sorted(packages), list(options), generator]).encode()).hexdigest()[:12]
    return (cache or cache_dir()) / "crds" / f"{module.replace('/', '_')}@{version}" / key


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def generate_crds(tool: Path | str, module: str, version: str, api_packages: Iterable[str], *,
                  options: Iterable[str] = (), generator: str = "", cache: Path | None = None) -> Path:
    """The folder of CRD YAML files (one per resource, controller-gen's names) generated from the API
    packages of ``module@version`` by the controller-gen binary ``tool``.

    ``api_packages``: import paths, or paths relative to the module root; a trailing ``/...`` takes every
    package below. ``options``: extra ``crd`` generator options (``maxDescLen=0``). ``generator``: a label of
    the controller-gen build (its version) that is part of the cache key, so a new generator regenerates.
    """
    packages = package_paths(module, api_packages)
    if not packages:
        raise ToolchainError(f"generate_crds {module}@{version}: no API packages given")
    options = list(options)
    final = crd_cache_dir(module, version, packages, options, generator, cache=cache)
    if (final / COMPLETE).is_file():
        return final  # warm: nothing to do
    root = cache or cache_dir()
    with _locked(root / "locks" / f"crds-{final.parent.name}-{final.name}.lock"):
        if (final / COMPLETE).is_file():
            return final  # another process generated it while we waited
        log_path = root / "logs" / f"crds-{final.parent.name}-{final.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".crdgen-", dir=final.parent))
        try:
            with open(log_path, "w") as log, Progress(f"crdgen {module}@{version}", "generate CRDs", every=10) as progress:
                out = _generate(Path(tool), module, version, packages, options, work, log, progress)
                count = len(list(out.glob("*.yaml")))
                if count == 0:
                    raise ToolchainError(f"controller-gen wrote no CRD for {', '.join(packages)} of {module}@{version}",
                                         hint=f"log: {log_path}")
                (out / COMPLETE).write_text(json.dumps({"module": module, "version": version, "packages": packages,
                                                        "options": options, "generator": generator}) + "\n")
                progress.update(f"{count} CRDs")
            shutil.rmtree(final, ignore_errors=True)
            os.replace(out, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final


def _generate(tool: Path, module: str, version: str, packages: list[str], options: list[str], work: Path, log,
              progress: Progress) -> Path:
    """Run the steps in ``work``: a module requiring ``module@version`` (with the tag's replace list), tidy,
    then controller-gen. Returns the output folder."""
    pin = ToolPin(name=f"crds of {module}", version=version, module=module, package="")
    progress.update(f"go mod download {module}@{version}")
    info = gobuild.module_info(module, version, log)
    mod = work / "mod"
    mod.mkdir()
    (mod / "go.mod").write_text(gobuild.wrapper_gomod(pin, "crdgen", info))
    # Importing the API packages lets `go mod tidy` resolve exactly what their types need.
    imports = "".join(f'\t_ "{pkg.removesuffix("/...")}"\n' for pkg in packages)
    (mod / "apis.go").write_text(f"// Package apis only imports the API packages CRDs are generated from.\npackage apis\n\n"
                                 f"import (\n{imports})\n")
    gobuild._run_go(["mod", "tidy"], mod, log, progress, step="go mod tidy", pin=pin)
    out = work / "out"
    crd = "crd" + (":" + ",".join(options) if options else "")
    paths = packages[0] if len(packages) == 1 else "{" + ",".join(packages) + "}"  # controller-gen's list syntax
    args = [str(tool), crd, f"paths={paths}", f"output:crd:dir={out}"]
    progress.update("controller-gen " + crd)
    log.write(f"\n$ {' '.join(args)}\n")
    log.flush()
    proc = subprocess.run(args, cwd=mod, env=gobuild.go_env(), capture_output=True, text=True)
    log.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise ToolchainError(f"controller-gen failed on {module}@{version} (exit {proc.returncode}): "
                             f"{detail[-1][:300] if detail else ''}", hint=f"log: {log.name}")
    return out


def load_crds(directory: Path) -> list[dict]:
    """The CRD objects of a folder ``generate_crds`` made, in file-name order."""
    docs = []
    for path in sorted(Path(directory).glob("*.yaml")):
        docs += [d for d in yamlio.load_all(path.read_text()) if d]
    return docs


def served_kinds(crds: Iterable[dict]) -> dict[str, list[str]]:
    """``{group/Kind: [served versions]}`` of CRD objects, e.g. ``{"external-secrets.io/ExternalSecret": ["v1"]}``."""
    out = {}
    for crd in crds:
        spec = crd.get("spec") or {}
        out[f"{spec.get('group')}/{(spec.get('names') or {}).get('kind')}"] = [
            v["name"] for v in spec.get("versions") or [] if v.get("served")]
    return out


__all__ = ["generate_crds", "load_crds", "served_kinds", "crd_cache_dir", "package_paths"]
