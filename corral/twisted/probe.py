"""The master's throwaway child: load a Twisted application and say what
is in it, as one line of JSON on stdout, then exit.

    python -m corral.twisted.probe PATH

The master must learn the tree (names, classes, listening addresses,
supervision settings) without a reactor in its own process: importing a
.tac may install one. So this process loads the file once, reports, and
goes; the workers load it again for themselves. Reply:

    {"app": NAME, "uid": int|null, "gid": int|null, "files": [PATH...],
     "services": [{"name", "class", "tree", "addresses", "supervision"}...]}
    {"error": MESSAGE, "line": int|null, "detail": TEXT|null}
"""

import json
import os
import sys


def describe(service):
    """{name, class, children}, as corral's tree view shows a tree."""
    from twisted.application.service import IServiceCollection

    collection = IServiceCollection(service, None)
    children = list(collection) if collection is not None else []
    cls = type(service)
    name = cls.__qualname__ if cls.__module__ in ("__corral_tac__", "__main__") \
        else f"{cls.__module__}.{cls.__qualname__}"
    return {"name": getattr(service, "name", None), "class": name,
            "children": [describe(child) for child in children]}


def report(path):
    from twisted.application.service import IProcess, IService

    from corral.twisted import servers, tacfile

    application, children = tacfile.load(path)
    process = IProcess(application, None)
    services = []
    for name, child in children:
        settings = getattr(child, "supervision", {})
        try:
            json.dumps(settings)
        except (TypeError, ValueError):
            raise tacfile.TacError(f"service {name!r}: its supervision settings must be plain "
                                   f"data (strings, numbers, lists, tables), not {settings!r}")
        services.append({
            "name": name,
            "class": describe(child)["class"],
            "tree": describe(child),
            "addresses": [where for _, where in servers.listening(child)],
            "supervision": settings,
        })
    return {"app": getattr(IService(application, None), "name", None),
            "uid": getattr(process, "uid", None), "gid": getattr(process, "gid", None),
            "files": tacfile.user_files(os.path.dirname(os.path.abspath(path))),
            "services": services}


def main(argv):
    from corral.twisted.tacfile import TacError

    out = sys.stdout
    sys.stdout = sys.stderr  # what the file prints is not the reply
    try:
        reply = report(argv[0])
    except TacError as exc:
        reply = {"error": exc.message, "line": exc.line, "detail": exc.detail}
    except Exception as exc:  # noqa: BLE001 - anything the user's code raised
        import traceback

        reply = {"error": f"loading it raised {type(exc).__name__}: {exc}", "line": None,
                 "detail": traceback.format_exc()}
    out.write(json.dumps(reply) + "\n")
    out.flush()
    os._exit(0)  # no reactor shutdown, no atexit of the user's: we only looked


if __name__ == "__main__":
    main(sys.argv[1:])
