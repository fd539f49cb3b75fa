"""The files of a batch, listed and named as srrun's CLI lists a folder
(tools/batch.c), and outputs written whole. Runs in the driver."""

import os
import stat
import tempfile

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


def read_input(path):
    """The bytes of the input at path, or the line that says why not
    (str): as the CLI opens inputs (formats/file.c), a regular file only,
    so that a FIFO or device put in place after the listing is refused,
    not waited on or read without end."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        return f"{path}: {error.strerror}"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return f"{path}: not a regular file"
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
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
        self.files.append(File(path, output_name(out_folder, path, self.scale, self.jpeg)))
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


def _read_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, at import in the driver's main thread: os.umask sets it too.
_UMASK = _read_umask()


def write_whole(path, data):
    """Writes data to path through a temporary file in the same folder (a
    hidden name, which a walk leaves out), renamed when complete: a failure
    or an interruption leaves no file at path. The folders above are made
    when missing. A new file gets mode 0666 less the umask, as the CLI's."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".part",
                                     dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o666 & ~_UMASK)
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
