#!/usr/bin/env python3
"""test_web: `srrun serve`'s page (tools/serve_page.*) in a real headless
Chromium, driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
Chromium reads commands on its fd 3 and writes answers and events on its
fd 4, each a JSON message ended by a NUL byte). Standard library only.

The page is opened, a photo chosen in its file input and the Upscale button
clicked as a user would; the test waits for the result, clicks Download
and checks that the file saved is the server's /v1/upscale answer for the
same photo (test_serve checks those against the CLI's), that the images
shown have the right sizes, that the slider moves from the keyboard,
that a non-image dropped on it shows the server's error, that Cancel stops a
long job, and that the page asked nothing of any other origin and broke no
rule of its Content-Security-Policy. Screenshots go to OUT_DIR.

usage: test_web.py SRRUN CHROMIUM MODEL PHOTO OUT_DIR
"""
import base64
import fcntl
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib

WAIT_SECONDS = 30  # any one wait: the machine may be loaded


class Failure(Exception):
    pass


def deadline_passed(deadline, what):
    if time.monotonic() > deadline:
        raise Failure(f"timed out after {WAIT_SECONDS} s waiting for {what}")


class Server:
    """`srrun serve MODEL --listen 127.0.0.1:0`."""

    def __init__(self, srrun, model, workdir):
        self.log_path = os.path.join(workdir, "server.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [srrun, "serve", model, "--listen", "127.0.0.1:0", "-m", "512M",
                 "--threads", "2"],
                stdout=subprocess.PIPE, stderr=log, cwd=workdir)
        self.url = None

    def read_url(self):
        """Its URL, from its first line."""
        deadline = time.monotonic() + WAIT_SECONDS
        line = b""
        while not line.endswith(b"\n"):
            deadline_passed(deadline, "the server's first line")
            if select.select([self.proc.stdout], [], [], 0.5)[0]:
                byte = os.read(self.proc.stdout.fileno(), 1)  # past the line is not ours
                if not byte:
                    raise Failure(f"the server ended: {self.log()}")
                line += byte
        prefix = b"listening on "
        if not line.startswith(prefix):
            raise Failure(f"the server's first line: {line!r}")
        self.url = line[len(prefix):].decode().strip()

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-2000:]

    def request(self, method, path, body=None):
        """(status, body) of a request to the server."""
        req = urllib.request.Request(self.url + path, data=body, method=method)
        try:
            with urllib.request.urlopen(req, timeout=WAIT_SECONDS) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def metric(self, name):
        status, body = self.request("GET", "/metrics")
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise Failure(f"no {name} in /metrics")

    def stop(self):
        """SIGTERM; its exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        return self.proc.returncode


class Browser:
    """Headless Chromium and one page of it, spoken to over the pipe."""

    def __init__(self, chromium, workdir):
        # Chromium's ends of the pipes become its fds 3 and 4, its log 1
        # and 2: each is moved above 10 first, so that no dup2 overwrites
        # another (ctest leaves fds 3 and 4 free for os.pipe to take).
        def high(fd):
            moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
            os.close(fd)
            return moved

        commands_r, commands_w = map(high, os.pipe())
        answers_r, answers_w = map(high, os.pipe())
        self.workdir = workdir
        self.log_path = os.path.join(workdir, "chromium.log")
        log = high(os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
        argv = [chromium, "--headless=new", "--remote-debugging-pipe",
                "--user-data-dir=" + os.path.join(workdir, "profile"),
                "--no-sandbox",  # as root (CI) Chromium refuses to start without it
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-crash-reporter", "--disable-dev-shm-usage",
                "--mute-audio", "--window-size=1000,1100", "about:blank"]
        env = dict(os.environ, TMPDIR=workdir, HOME=workdir)
        self.pid = os.posix_spawn(chromium, argv, env, setpgroup=0, file_actions=[
            (os.POSIX_SPAWN_DUP2, commands_r, 3),
            (os.POSIX_SPAWN_DUP2, answers_w, 4),
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log, 1),
            (os.POSIX_SPAWN_DUP2, log, 2)])
        for fd in (commands_r, answers_w, log):
            os.close(fd)
        self.commands, self.answers = commands_w, answers_r
        self.received = b""
        self.next_id = 0
        self.session = None
        self.events = []  # every event seen, in order

    def open_page(self):
        """A tab, attached to, its events on; downloads into workdir."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log", "DOM"):
            self.send(domain + ".enable")
        self.downloads = os.path.join(self.workdir, "downloads")
        self.send("Browser.setDownloadBehavior", {"behavior": "allow", "eventsEnabled": True,
                                                  "downloadPath": self.downloads}, session=False)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-2000:]

    def _message(self, deadline, what):
        while b"\0" not in self.received:
            deadline_passed(deadline, what)
            if select.select([self.answers], [], [], 0.5)[0]:
                data = os.read(self.answers, 1 << 20)
                if not data:
                    raise Failure(f"Chromium closed the pipe: {self.log()}")
                self.received += data
        message, self.received = self.received.split(b"\0", 1)
        return json.loads(message)

    def send(self, method, params=None, session=True):
        """Sends a command (to the page's session once there is one) and
        returns its result, keeping the events that come before it."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self.commands, data):]
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            answer = self._message(deadline, f"the answer to {method}")
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise Failure(f"{method}: {answer['error'].get('message')}")
                return answer["result"]
            if "method" in answer:
                self.events.append(answer)

    def wait_event(self, method, test, what):
        """The first event of this method (seen or to come) that passes test."""
        deadline = time.monotonic() + WAIT_SECONDS
        for event in self.events:
            if event["method"] == method and test(event["params"]):
                return event["params"]
        while True:
            event = self._message(deadline, what)
            if "method" in event:
                self.events.append(event)
                if event["method"] == method and test(event["params"]):
                    return event["params"]

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (a promise awaited)."""
        result = self.send("Runtime.evaluate", {"expression": expression,
                                                "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in result:
            raise Failure(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, what):
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            deadline_passed(deadline, what)
            time.sleep(0.05)

    def choose_file(self, path):
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        node = self.send("DOM.querySelector", {"nodeId": root, "selector": "#file"})["nodeId"]
        self.send("DOM.setFileInputFiles", {"nodeId": node, "files": [path]})

    def middle(self, selector):
        """The middle of the element, scrolled into view; it must be shown."""
        x, y, area = self.evaluate(f"""(() => {{
            const element = document.querySelector({json.dumps(selector)});
            element.scrollIntoView({{block: "center"}});
            const r = element.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2, r.width * r.height];
        }})()""")
        if area == 0:
            raise Failure(f"{selector} is not shown")
        return x, y

    def click(self, selector):
        """A mouse click, as a user's: the element must not be covered."""
        x, y = self.middle(selector)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y,
                                                   "button": "left", "clickCount": 1})

    def drop_file(self, selector, path):
        """A file dragged from outside the page and dropped on the element."""
        x, y = self.middle(selector)
        data = {"items": [], "files": [path], "dragOperationsMask": 1}
        for kind in ("dragEnter", "dragOver", "drop"):
            self.send("Input.dispatchDragEvent", {"type": kind, "x": x, "y": y, "data": data})

    def key(self, name, code):
        for kind in ("rawKeyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", {"type": kind, "key": name, "code": name,
                                                 "windowsVirtualKeyCode": code})

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        """Browser.close, then SIGKILL to its process group if it lingers."""
        try:
            self.session = None
            self.send("Browser.close")
        except (Failure, OSError):
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.waitpid(self.pid, os.WNOHANG) == (0, 0):
            time.sleep(0.05)
        # Its helpers outlive it for a moment, writing into the profile:
        # killed, and waited for until none is left but zombies.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any_alive(self.pid):
            time.sleep(0.05)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        os.close(self.commands)
        os.close(self.answers)


def any_alive(group):
    """Whether a process of this group is alive (not a zombie)."""
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == str(group) and fields[0] != "Z":
            return True
    return False


def noise_png(size):
    """A size x size RGB PNG of noise: seconds of work for the test model."""
    rows = b"".join(b"\0" + os.urandom(size * 3) for _ in range(size))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data)))

    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))


def png_size(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise Failure("not a PNG")
    return struct.unpack(">II", data[16:24])


STATE = "document.body.dataset.state"


def wait_state(browser, states):
    expression = f"[{', '.join(map(json.dumps, states))}].includes({STATE}) && {STATE}"
    try:
        return browser.wait_for(expression, f"the page's state to be one of {states}")
    except Failure as e:
        shown = browser.evaluate(
            f"{STATE} + ': ' + document.getElementById('error').textContent")
        raise Failure(f"{e} (it is {shown})") from None


def upscale(browser, server, photo, photo_bytes):
    """A photo chosen and upscaled; the result must be the server's."""
    expected = server.request("POST", "/v1/upscale", photo_bytes)
    if expected[0] != 200:
        raise Failure(f"/v1/upscale: {expected}")
    browser.choose_file(photo)
    browser.click("#start")
    if wait_state(browser, ["done", "error", "cancelled"]) != "done":
        raise Failure("the job did not end done: " +
                      browser.evaluate("document.getElementById('error').textContent"))
    shown = browser.evaluate("""(() => {
        const $ = (id) => document.getElementById(id);
        return {sameImage: $("after").src === $("download").href,
                shown: !$("result").hidden && $("after").getBoundingClientRect().width > 0,
                after: [$("after").naturalWidth, $("after").naturalHeight],
                before: [$("before").naturalWidth, $("before").naturalHeight],
                error: $("error").textContent};
    })()""")
    width, height = png_size(photo_bytes)
    if shown["before"] != [width, height] or shown["after"] != [2 * width, 2 * height]:
        raise Failure(f"images shown: {shown['before']} before, {shown['after']} after")
    if not shown["shown"] or not shown["sameImage"] or shown["error"]:
        raise Failure(f"the result is not shown as it should be: {shown}")
    # The download link, clicked: the file saved is the server's answer.
    browser.click("#download")
    begun = browser.wait_event("Browser.downloadWillBegin", lambda p: True, "a download")
    browser.wait_event("Browser.downloadProgress",
                       lambda p: p["guid"] == begun["guid"] and p["state"] != "inProgress",
                       "the download's end")
    stem = os.path.splitext(os.path.basename(photo))[0]
    if begun["suggestedFilename"] != f"{stem}_x2.png":
        raise Failure(f"the download is named {begun['suggestedFilename']!r}")
    with open(os.path.join(browser.downloads, begun["suggestedFilename"]), "rb") as f:
        result = f.read()
    if result != expected[1]:
        raise Failure(f"the page's result ({len(result)} bytes) is not the server's "
                      f"/v1/upscale answer ({len(expected[1])} bytes)")


def check_slider(browser):
    """The comparison slider moves from the keyboard and clips the result."""
    browser.evaluate("document.getElementById('split').focus()")
    browser.key("ArrowRight", 39)
    browser.key("ArrowRight", 39)
    value, clip = browser.evaluate("""[document.getElementById("split").value,
                                       document.getElementById("after").style.clipPath]""")
    if value != "52" or clip != "inset(0px 0px 0px 52%)":
        raise Failure(f"after two right arrows the slider is at {value}, clip {clip!r}")


def check_server_error(browser, server, workdir):
    """A file that is not an image, dropped on the page: the page shows
    the server's message."""
    path = os.path.join(workdir, "notes.txt")
    with open(path, "wb") as f:
        f.write(b"not an image at all\n")
    status, body = server.request("POST", "/v1/jobs", b"not an image at all\n")
    if status != 400:
        raise Failure(f"the server answered {status} to a text file")
    message = json.loads(body)["error"]
    browser.drop_file("#drop", path)
    browser.click("#start")
    if wait_state(browser, ["done", "error", "cancelled"]) != "error":
        raise Failure("the text file dropped did not end in an error")
    shown = browser.evaluate("""[document.getElementById("error").textContent,
                                 document.getElementById("result").hidden,
                                 document.getElementById("cancel").hidden]""")
    if shown != [message, True, True]:
        raise Failure(f"the page shows {shown}, not the server's error {message!r}")


def check_cancel(browser, server, workdir, out_dir):
    """Cancel while a long job runs (its progress shown): the server
    cancels it."""
    path = os.path.join(workdir, "noise.png")
    with open(path, "wb") as f:
        f.write(noise_png(800))
    name = 'srrun_jobs_total{outcome="cancelled"}'
    before = server.metric(name)
    browser.choose_file(path)
    browser.click("#start")
    wait_state(browser, ["running"])
    browser.screenshot(os.path.join(out_dir, "screenshot_running.png"))
    status = browser.evaluate("document.getElementById('status').textContent")
    if "%" not in status:
        raise Failure(f"while running the page says {status!r}, not the job's progress")
    browser.click("#cancel")
    wait_state(browser, ["cancelled"])
    status = browser.evaluate("document.getElementById('status').textContent")
    if status != "Cancelled.":
        raise Failure(f"once cancelled the page says {status!r}")
    deadline = time.monotonic() + WAIT_SECONDS
    while server.metric(name) != before + 1:
        deadline_passed(deadline, "the server to count the job cancelled")
        time.sleep(0.1)


def check_events(browser, server):
    """Every request went to the server (or a blob: of the page's); no
    script error, no policy refused."""
    for event in browser.events:
        method, params = event["method"], event.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith((server.url + "/", "blob:", "data:")):
                raise Failure(f"the page asked for {url}")
        elif method == "Runtime.exceptionThrown":
            raise Failure(f"script error: {params['exceptionDetails']}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error" and \
                params["entry"]["source"] != "network":
            raise Failure(f"console: {params['entry']['text']}")


def run(srrun, chromium, model, photo, out_dir, workdir):
    server = Server(srrun, model, workdir)
    browser = None
    try:
        server.read_url()
        browser = Browser(chromium, workdir)
        browser.open_page()
        browser.send("Page.navigate", {"url": server.url + "/"})
        browser.wait_for("document.readyState === 'complete' && "
                         "document.getElementById('model').options.length > 0",
                         "the page and its list of models")
        models = browser.evaluate(
            "[...document.getElementById('model').options].map((o) => o.value)")
        if models != ["srpgan_x2"]:
            raise Failure(f"the page lists the models {models}")
        with open(photo, "rb") as f:
            photo_bytes = f.read()
        upscale(browser, server, photo, photo_bytes)
        check_slider(browser)
        browser.screenshot(os.path.join(out_dir, "screenshot.png"))
        check_server_error(browser, server, workdir)
        browser.screenshot(os.path.join(out_dir, "screenshot_error.png"))
        check_cancel(browser, server, workdir, out_dir)
        # Events come in with the answers: a round trip after a short wait
        # reads those of what the page did last (its DELETE, say).
        time.sleep(0.5)
        browser.evaluate("0")
        check_events(browser, server)
    except Failure as e:
        raise Failure(f"{e}\n--- server log:\n{server.log()}" +
                      (f"\n--- chromium log:\n{browser.log()}" if browser else "")) from None
    finally:
        if browser:
            browser.close()
        status = server.stop()
    if status != 0:
        raise Failure(f"the server exited {status} on SIGTERM: {server.log()}")


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__.rsplit("\n\n", 1)[1])
    srrun, chromium, model, photo, out_dir = map(os.path.abspath, sys.argv[1:])
    os.makedirs(out_dir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="srrun-web-")
    start = time.monotonic()
    try:
        run(srrun, chromium, model, photo, out_dir, workdir)
    except Failure as e:
        print(f"test_web: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"test_web: the page upscaled, showed an error and cancelled a job in "
          f"{time.monotonic() - start:.1f} s; screenshots in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
