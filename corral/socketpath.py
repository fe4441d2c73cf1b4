"""Where a master listens when its config does not say: one rule for both sides.

`corral run CONFIG` and `corral -c CONFIG CMD` must agree on the socket
without talking to each other, from any folder, for a .py config as for a
.toml one (a .py config cannot be read without running it). So the default
is a pure function of the config's real path:

- beside the config, named after it: /srv/shop/shop.toml -> /srv/shop/shop.sock
  (corral.toml -> corral.sock, where corral has always listened). Two
  projects are two folders, two configs in one folder two names;
- unless that folder is not writable, or the path is too long for a unix
  socket (107 bytes): then $XDG_RUNTIME_DIR/corral/NAME-HASH.sock, HASH
  from the config's real path, so that two configs named alike stay apart.

The master picks one (`choose`, which creates the runtime folder); a client
tries both (`candidates`), since it cannot know whether the master's user
could write the folder. A master that listens elsewhere (--socket, or a
socket set in the config) leaves a symlink at the place beside the config
(`point_beside`), so that `-c CONFIG` finds it too. Standard library only: the CLI imports this.
"""

import os
import zlib

UNIX_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL
RUNTIME_ENV = "XDG_RUNTIME_DIR"


def beside(config_path):
    """The socket next to the config: DIR/NAME.sock."""
    real = os.path.realpath(config_path)
    folder, name = os.path.split(real)
    return os.path.join(folder, os.path.splitext(name)[0] + ".sock")


def in_runtime_dir(config_path, environ=None):
    """$XDG_RUNTIME_DIR/corral/NAME-HASH.sock, or None without that variable."""
    environ = os.environ if environ is None else environ
    runtime = environ.get(RUNTIME_ENV)
    if not runtime or not os.path.isabs(runtime):
        return None
    real = os.path.realpath(config_path)
    digest = f"{zlib.crc32(os.fsencode(real)):08x}"  # zlib: hashlib costs the CLI 7 ms
    stem = os.path.splitext(os.path.basename(real))[0][:40]
    return os.path.join(runtime, "corral", f"{stem}-{digest}.sock")


def candidates(config_path, environ=None):
    """Every place a master started on config_path without a socket setting may listen."""
    found = [beside(config_path)]
    runtime = in_runtime_dir(config_path, environ)
    if runtime is not None:
        found.append(runtime)
    return found


def choose(config_path, environ=None, create=True):
    """The master's default socket for config_path (see the module's docstring).

    With create, makes $XDG_RUNTIME_DIR/corral (mode 0700) when that is the
    choice; `corral check` asks without it.
    """
    path = beside(config_path)
    if os.access(os.path.dirname(path), os.W_OK) and len(os.fsencode(path)) <= UNIX_PATH_MAX:
        return path
    runtime = in_runtime_dir(config_path, environ)
    if runtime is None:
        return path  # binding it fails with an error that names it
    if create:
        try:
            os.mkdir(os.path.dirname(runtime), 0o700)
        except FileExistsError:
            pass
        except OSError:
            return path
    return runtime


def of_config(setting, config_path, environ=None, create=True):
    """(path, set_in_config): the socket of a loaded config whose [corral]
    socket is `setting`. A socket given in a config is made absolute by its
    loader, so a relative one is MasterSpec's default: none was set.
    """
    if os.path.isabs(setting):
        return setting, True
    return choose(config_path, environ, create), False


def point_beside(config_path, socket):
    """A symlink at beside(config_path) to socket, when the master listens
    elsewhere (--socket, a socket set in a .py config): `-c CONFIG` then
    finds it without running the config. Returns the link, or None when
    there is no need or no room (an existing file that is not a symlink is
    never touched; the folder may be read-only). Never raises.
    """
    link = beside(config_path)
    if os.path.realpath(socket) == link or len(os.fsencode(link)) > UNIX_PATH_MAX:
        return None
    try:
        if os.path.islink(link):
            os.unlink(link)  # a pointer left by a master that died
        os.symlink(socket, link)
    except OSError:
        return None
    return link


def remove_pointer(link, socket):
    """Remove the symlink point_beside made, if it still points to socket."""
    try:
        if link and os.path.islink(link) and os.readlink(link) == socket:
            os.unlink(link)
    except OSError:
        pass
