"""The master's throwaway child: load a Twisted application and say what
is in it, as one line of JSON on stdout, then exit.

    python -m corral.twisted.probe PATH
    python -m corral.twisted.probe --plugin NAME FOLDER [OPTION...]
    python -m corral.twisted.probe --plugins FOLDER

The master must learn the tree (names, classes, listening addresses,
supervision settings) without a reactor in its own process: importing a
.tac, or a twistd plugin's module, may install one. So this process loads
the file (or makes the plugin's service from its options, with FOLDER as
twistd's current folder) once, reports, and goes; the workers load it again
for themselves. Replies:

    {"app": NAME, "uid": int|null, "gid": int|null, "files": [PATH...],
     "services": [{"name", "class", "tree", "addresses", "supervision"}...]}
    {"error": MESSAGE, "line": int|null, "detail": TEXT|null}
    {"exit": CODE, "text": TEXT}        a plugin's --help or usage error
    {"missing": NAME, "plugins": [NAME...]}   no twistd plugin has that name
    {"plugins": [{"name", "description"}...]}   --plugins: the list
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
    from corral.twisted import tacfile

    application, children = tacfile.load(path)
    return report_tree(application, children,
                       tacfile.user_files(os.path.dirname(os.path.abspath(path))))


def report_plugin(name, folder, argv):
    from corral.twisted import servicemakers, tacfile

    found = servicemakers.makers(folder)
    if name not in found:
        return {"missing": name, "plugins": sorted(found)}
    try:
        application, children = servicemakers.load(name, argv, folder)
    except servicemakers.OptionsDone as done:
        return {"exit": done.code, "text": done.text}
    module, root = servicemakers.module_folder(name, folder)
    files = [module] if module and "site-packages" not in module else []
    return report_tree(application, children, files + (tacfile.user_files(root) if root else []))


def report_tree(application, children, files):
    from twisted.application.service import IProcess, IService

    from corral.twisted import servers, tacfile

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
            "files": sorted(set(files)), "services": services}


def main(argv):
    from corral.twisted.tacfile import TacError

    out = sys.stdout
    sys.stdout = sys.stderr  # what the file prints is not the reply
    try:
        if argv[0] == "--plugins":
            from corral.twisted import servicemakers

            reply = {"plugins": servicemakers.describe(argv[1])}
        elif argv[0] == "--plugin":
            reply = report_plugin(argv[1], argv[2], argv[3:])
        else:
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
