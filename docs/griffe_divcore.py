"""A griffe extension for the API pages: read the source, fill in what only the runtime has.

mkdocstrings reads divcore statically (from the source files, importing nothing), so the
optional bridges divcore.torch and divcore.dask are documented without torch or dask
installed. A public name of the top-level package that the source alone does not document
(a function bound at import time to the live backend, a compiled function whose docstring
lives in an extension module) is then taken from `import divcore` itself, which needs only
numpy: its docstring and signature are what `help(divcore.NAME)` shows.

mkdocs.yml names this file under the python handler's `extensions`.
"""
import logging

import griffe

log = logging.getLogger("mkdocs.plugins.divcore.griffe")


def _documented(member):
    """Whether the statically read `member` already has a docstring (an alias counts when
    its target can be resolved and has one)."""
    try:
        return member is not None and not member.is_attribute and bool(member.docstring)
    except (griffe.AliasResolutionError, griffe.CyclicAliasError, KeyError):
        return False


class DivcoreRuntimeDocstrings(griffe.Extension):
    """Replace the undocumented public members of `divcore` by their inspected objects."""

    package = "divcore"

    def on_package(self, *, pkg, loader=None, **kwargs):
        """griffe >= 2: called once the package is loaded."""
        if pkg.name != self.package:
            return
        try:
            public = self._public()
        except ImportError as exc:  # not built or not installed: the source is all there is
            log.info("divcore cannot be imported (%s): documenting its source only", exc)
            return
        missing = [name for name in public if not _documented(pkg.members.get(name))]
        if not missing:
            return
        inspected = griffe.inspect(self.package,
                                   docstring_parser=getattr(loader, "docstring_parser", None),
                                   docstring_options=getattr(loader, "docstring_options",
                                                             None))
        for name in missing:
            if name in inspected.members:
                pkg.set_member(name, inspected.members[name])

    # griffe 1.x calls the same hook by this name
    on_package_loaded = on_package

    def _public(self):
        import divcore  # the built package: numpy only, no torch or dask

        return [name for name in getattr(divcore, "__all__", ()) if not name.startswith("_")]
