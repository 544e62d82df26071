"""mkdocs hooks: the same Markdown reads well on the repository page and on the site.

- Pages outside docs/ (CHANGELOG.md, a RELIABILITY.md at the root) are added to the site
  from the repository root, so they stay single files; their links to docs/x.md become
  the site's x.md.
- Links from a docs page to files outside docs/ (../README.md, ../src/...) work on the
  repository page as they are; on the site they become links to the repository.
- Pages the nav names but nobody has written yet are left out of the nav (with a log
  line) instead of failing the --strict build, and links to them point at the repository.
"""
import logging
import os
import re

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.divcore")

# site page -> file at the repository root that provides it when docs/ has no such page
ROOT_PAGES = {"changelog.md": "CHANGELOG.md", "RELIABILITY.md": "RELIABILITY.md"}
REPOSITORY_FILES = "https://github.com/divcore/divcore/blob/main/"
# ](../path) in Markdown: a link that leaves docs/
_OUTSIDE_LINK = re.compile(r"\]\(\.\./([^)\s#]+)(#[^)\s]*)?\)")


def _root(config):
    return os.path.dirname(os.path.abspath(config["docs_dir"]))


def _available(config, page):
    return (os.path.exists(os.path.join(config["docs_dir"], page))
            or (page in ROOT_PAGES
                and os.path.exists(os.path.join(_root(config), ROOT_PAGES[page]))))


_missing_pages = set()


def _prune(nav, config):
    kept = []
    for entry in nav:
        if isinstance(entry, dict):
            (title, target), = entry.items()
            if isinstance(target, list):
                target = _prune(target, config)
                if target:
                    kept.append({title: target})
            elif target.startswith(("http://", "https://")) or _available(config, target):
                kept.append(entry)
            else:
                log.info("nav: %s is not written yet; left out", target)
                _missing_pages.add(target)
        elif isinstance(entry, str) and not _available(config, entry):
            log.info("nav: %s is not written yet; left out", entry)
            _missing_pages.add(entry)
        else:
            kept.append(entry)
    return kept


def on_config(config):
    _missing_pages.clear()  # `mkdocs serve` builds again in the same process
    if config.get("nav"):
        config["nav"] = _prune(config["nav"], config)
    return config


def on_files(files, config):
    for page, source in ROOT_PAGES.items():
        path = os.path.join(_root(config), source)
        if files.get_file_from_path(page) is None and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                files.append(File.generated(config, page, content=f.read()))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri in ROOT_PAGES and page.file.generated_by:
        return _ROOT_LINK.sub(_from_root, markdown)
    markdown = _OUTSIDE_LINK.sub(_to_repository, markdown)
    for missing in _missing_pages:
        markdown = markdown.replace(f"]({missing})", f"]({REPOSITORY_FILES}docs/{missing})")
    return markdown


# ](path) in a root file: relative to the repository root
_ROOT_LINK = re.compile(r"\]\((?![a-z]+:|#|/)([^)\s#]+)(#[^)\s]*)?\)")


def _to_repository(match):
    return f"]({REPOSITORY_FILES}{match.group(1)}{match.group(2) or ''})"


def _from_root(match):
    """A root page's link: docs/x.md is the site's x.md, anything else the repository's."""
    path, anchor = match.group(1), match.group(2) or ""
    if path.startswith("docs/"):
        return f"]({path[len('docs/'):]}{anchor})"
    return f"]({REPOSITORY_FILES}{path}{anchor})"
