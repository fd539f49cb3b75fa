"""The files of a batch, listed and named as srrun's CLI lists a folder
(tools/batch.c), inputs read and outputs written as the CLI reads and
writes them (formats/file.c). Runs in the driver, and in the workers with
--shared-storage."""

import errno
import os
import secrets
import stat

_PNG = b"\x89PNG\r\n\x1a\n"


def starts_as_image(path):
    """Whether the file starts as a PNG or a JPEG does (only the signature:
    whether the rest is an image is for the decoder to say). OSError when
    it cannot be read; a FIFO put in place meanwhile is not waited on."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        head = os.read(fd, 8)
    finally:
        os.close(fd)
    return head == _PNG or head[:3] == b"\xff\xd8\xff"


# The largest input read (the driver holds it, and ships it to a worker),
# unless --max-input-size says otherwise: far above any photograph's file,
# far below what a worker's memory or Ray's object store holds.
MAX_INPUT_BYTES = 512 << 20


def read_input(path, max_bytes=MAX_INPUT_BYTES):
    """The bytes of the input at path, or the line that says why not
    (str): as the CLI opens inputs (formats/file.c), a regular file only,
    so that a FIFO or device put in place after the listing is refused,
    not waited on or read without end; a file over max_bytes is refused
    before it is read. As the CLI reads, the size fstat gives is read (a
    file growing meanwhile is read as it was; one shrinking fails), so
    that no more than that is ever allocated."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        return f"{path}: {error.strerror}"
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            return f"{path}: {os.strerror(errno.EISDIR)}"
        if not stat.S_ISREG(st.st_mode):
            return f"{path}: not a regular file"
        if st.st_size > max_bytes:
            limit = f"{max_bytes >> 20}M" if max_bytes % (1 << 20) == 0 else f"{max_bytes} bytes"
            return (f"{path}: {st.st_size} bytes, over the {limit} an input may have "
                    "(--max-input-size)")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(st.st_size)
        if len(data) < st.st_size:
            return (f"{path}: file shrank to {len(data)} bytes while being read "
                    f"(was {st.st_size})")
        return data
    except OSError as error:
        return f"{path}: {error.strerror}"
    finally:
        os.close(fd)


def output_name(folder, input_path, scale, jpeg):
    """folder/<input's name without extension>_x<scale>.png (or .jpg); the
    name alone when folder is None (tools/upscale.c output_name)."""
    base = os.path.basename(input_path)
    dot = base.rfind(".")
    stem = base[:dot] if dot > 0 else base
    name = f"{stem}_x{scale}.{'jpg' if jpeg else 'png'}"
    return os.path.join(folder, name) if folder else name


class File:
    """One input and its output; failed holds the line that says why it
    failed, skipped whether its output existed."""

    def __init__(self, input_path, output):
        self.input = input_path
        self.output = output
        self.failed = None
        self.skipped = False


class Listing:
    """The images under a folder, in the CLI's order: each folder's entries
    sorted by their names' bytes, hidden ones (.*) left out, links to
    folders not followed, a folder holding itself (a bind mount) and the
    output folder not walked. note(path, why) hears of what is skipped."""

    def __init__(self, folder, out, scale, jpeg, note):
        self.out = out
        self.scale = scale
        self.jpeg = jpeg
        self.note = note
        self.files = []
        self.input_ids = set()
        st = os.stat(out)
        self.out_id = (st.st_dev, st.st_ino)
        self.name_max = os.pathconf(out, "PC_NAME_MAX")
        st = os.stat(folder)
        self._walk(folder, "", [(st.st_dev, st.st_ino)])
        self._mark_shared_outputs()

    def _walk(self, folder, below, ancestors):
        try:
            names = os.listdir(folder)
        except OSError as error:
            return self.note(folder, error.strerror)
        for name in sorted((n for n in names if not n.startswith(".")), key=os.fsencode):
            self._entry(os.path.join(folder, name), below, name, ancestors)

    def _entry(self, path, below, name, ancestors):
        try:
            st = os.lstat(path)
            link = stat.S_ISLNK(st.st_mode)
            if link:
                st = os.stat(path)
        except OSError as error:
            return self.note(path, error.strerror)
        file_id = (st.st_dev, st.st_ino)
        if stat.S_ISDIR(st.st_mode):
            # As find(1): two links a level to the next would make 2^levels paths.
            if link:
                return self.note(path, "a link to a folder (not followed)")
            if file_id in ancestors:
                return self.note(path, "a folder that holds itself (a bind mount)")
            if file_id == self.out_id:
                return None  # the outputs of an earlier run
            return self._walk(path, os.path.join(below, name), ancestors + [file_id])
        if not stat.S_ISREG(st.st_mode):
            return self.note(path, "not a regular file")
        try:
            image = starts_as_image(path)
        except OSError as error:
            return self.note(path, error.strerror)
        if not image:
            return self.note(path, "not a PNG or JPEG image")
        out_folder = os.path.join(self.out, below) if self.out != "." else below or None
        file = File(path, output_name(out_folder, path, self.scale, self.jpeg))
        # As the CLI's write would say, but before the file is upscaled.
        if len(os.fsencode(os.path.basename(file.output))) > self.name_max:
            file.failed = f"{file.output}: {os.strerror(errno.ENAMETOOLONG)}"
        self.files.append(file)
        self.input_ids.add(file_id)
        return None

    def _mark_shared_outputs(self):
        """Of two inputs with one output (a.png, a.jpg), the later fails."""
        order = sorted(range(len(self.files)), key=lambda i: (os.fsencode(self.files[i].output), i))
        for before, after in zip(order, order[1:]):
            first, second = self.files[before], self.files[after]
            if first.output == second.output:
                second.failed = (f"{second.input}: its output {second.output} is also "
                                 f"{first.input}'s; skipped")

    def replaces(self, output, model_path):
        """What writing output would replace that the run reads, or None."""
        try:
            st = os.stat(output)
        except OSError:
            return None
        if (st.st_dev, st.st_ino) in self.input_ids:
            return "an input of this run"
        if model_path and os.path.exists(model_path) and os.path.samefile(model_path, output):
            return "the model"
        return None


# ---- Outputs, as formats/file.c writes them ----------------------------------

def _current_umask():
    """The umask, read where Linux shows it without changing it: setting it
    to read it (os.umask) would, for that moment, give a file another
    thread creates (Ray's have logs) the wrong mode."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# O_TMPFILE's errors where the kernel (EISDIR: older than 3.11, which reads
# it as O_DIRECTORY) or the file system has none.
_NO_UNNAMED = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)


def _open_unnamed(folder_fd):
    """An unnamed file in the folder (mode 0666 less the umask, as a new
    file's), or None where the kernel or file system has none. It is linked
    into place through /proc/self/fd, so that must be there too."""
    if not hasattr(os, "O_TMPFILE") or not os.access("/proc/self/fd", os.X_OK):
        return None
    try:
        return os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o666, dir_fd=folder_fd)
    except OSError as error:
        if error.errno in _NO_UNNAMED:
            return None
        raise


def _fresh_name(folder_fd, make):
    """Calls make(name) with fresh hidden names (.srrun-<hex>.tmp, which a
    walk leaves out) until one is not taken; returns that name. Short
    whatever the output's name, so that it is never what is too long."""
    for _ in range(100):
        name = f".srrun-{secrets.token_hex(8)}.tmp"
        try:
            make(name)
            return name
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, "no free temporary name beside the output")


def _unlink_quietly(name, folder_fd):
    try:
        os.unlink(name, dir_fd=folder_fd)
    except OSError:
        pass


def _write_all(fd, data):
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


def _set_mode(fd, old, unnamed):
    """The new file's mode and owner: the replaced file's (its owner only
    where the process may give files away, as root can), else 0666 less
    the umask (O_TMPFILE's already; mkstemp-like files are made 0600)."""
    if old is None:
        if not unnamed:
            os.fchmod(fd, 0o666 & ~_current_umask())
        return
    if old.st_uid != os.geteuid() or old.st_gid != os.getegid():
        try:
            os.fchown(fd, old.st_uid, old.st_gid)
        except PermissionError:
            pass
    os.fchmod(fd, stat.S_IMODE(old.st_mode))


def _find_output(path):
    """What writing to path writes: ("new", path, None), ("replace", the
    regular file path is or links to, its stat), or ("through", path,
    None) for a FIFO or character device (/dev/null), written into.
    OSError with the line's reason when it is none of these."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "new", path, None
    link = stat.S_ISLNK(st.st_mode)
    if link:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise OSError(errno.ENOENT, "symbolic link to nothing") from None
    if stat.S_ISDIR(st.st_mode):
        raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
    if stat.S_ISREG(st.st_mode):
        # A link's target is replaced, not the link: the temporary goes
        # beside the target, where rename can put it.
        return "replace", os.path.realpath(path) if link else path, st
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
        return "through", path, None
    raise OSError(errno.EINVAL, "not a regular file, FIFO or character device")


def _link(fd, name, folder_fd):
    """Gives the unnamed file fd the name in the folder. dst_dir_fd makes
    os.link call linkat, whose AT_SYMLINK_FOLLOW (follow_symlinks) links
    the file /proc/self/fd/N stands for: link(2), which os.link calls
    without it, would link that magic symbolic link itself (EXDEV)."""
    os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=folder_fd, follow_symlinks=True)


def _write_replacing(path, data, old):
    """Writes a new file at path whole: an unnamed file linked into place
    when complete (linkat cannot replace a file: one that exists, or
    appears meanwhile, is replaced by linking under a fresh name and
    renaming that over it), or where there is no unnamed file, a named one
    renamed into place. A failure or an exception leaves no partial file
    and no temporary; the process killed, none either, but for the named
    one's (hidden) where there is no unnamed file."""
    folder, name = os.path.split(path)
    folder_fd = os.open(folder or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fd = temporary = None
    try:
        fd = _open_unnamed(folder_fd)
        unnamed = fd is not None
        if not unnamed:
            def create(candidate):
                nonlocal fd
                fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                             0o600, dir_fd=folder_fd)
            temporary = _fresh_name(folder_fd, create)
        _set_mode(fd, old, unnamed)
        _write_all(fd, data)
        if unnamed and old is None:
            try:
                return _link(fd, name, folder_fd)
            except FileExistsError:  # made meanwhile: replaced
                pass
        if unnamed:
            temporary = _fresh_name(folder_fd, lambda candidate: _link(fd, candidate, folder_fd))
        # Closed before the rename: a full disk can show only here (NFS).
        os.close(fd)
        fd = None
        os.replace(temporary, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        temporary = None
        return None
    finally:
        if fd is not None:
            os.close(fd)
        if temporary is not None:
            _unlink_quietly(temporary, folder_fd)
        os.close(folder_fd)


def _write_through(path, data):
    # Waits for a reader on a FIFO, as writing to one should.
    fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISFIFO(st.st_mode) and not stat.S_ISCHR(st.st_mode):
            raise OSError(errno.EINVAL, "changed while being opened")
        _write_all(fd, data)
    finally:
        os.close(fd)


def _make_folders_above(path):
    """Makes the folders above path that are missing (as tools/batch.c
    does); the line that says why not, or None."""
    parts = path.split("/")
    for i in range(1, len(parts)):
        folder = "/".join(parts[:i])
        if not folder:
            continue  # the root
        try:
            os.stat(folder)
        except OSError:
            try:
                os.mkdir(folder, 0o777)
            except FileExistsError:
                pass
            except OSError as error:
                return f"{folder}: cannot make the folder: {error.strerror}"
        if not os.path.isdir(folder):
            return f"{folder}: not a folder"
    return None


def write_whole(path, data):
    """Writes data to path as the CLI writes an output (formats/file.c):
    the folders above made when missing; a new file, or an existing
    regular file replaced whole (keeping its mode, and its owner where the
    process may), so that a failure or an interruption leaves either the
    old file or the new one; a symbolic link written through (its target
    replaced, the link kept); a FIFO or character device written into.
    None, or the line that says why it was not written (str)."""
    why = _make_folders_above(path)
    if why:
        return why
    try:
        kind, target, old = _find_output(path)
        if kind == "through":
            _write_through(target, data)
        else:
            _write_replacing(target, data, old)
    except OSError as error:
        return f"{path}: {error.strerror}"
    return None
