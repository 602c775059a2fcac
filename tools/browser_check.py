#!/usr/bin/env python3
"""Opens HTML pages in headless Chromium from file:// URLs, through the DevTools protocol, and
prints one JSON object per page with what a person would see:

  errors      console errors, uncaught exceptions and failed loads
  requests    every URL the page asked for that is not data: or file: (must be none)
  images      <img> count; broken: the alt text of those that did not decode (naturalWidth 0)
  confusion   the numbers of the table #confusion, row by row (true class), when there is one
  rows        the rows of the table #runs, when there is one: [[cell, ...], ...]
  sections    the ids of the page's <section>s; scripts: how many <script> elements (must be 0)
  colours     distinct colours in the screenshot (1: a blank page)

usage: browser_check.py PAGE.html [--screenshot OUT.png] [--chromium PATH]
Chromium: Debian's `chromium` (.ci/run installs it with apt). Python: websocket-client, Pillow.
"""
import argparse
import base64
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket
from PIL import Image

INSPECT = """(async () => {
  const images = [...document.images];
  await Promise.all(images.map(i => i.decode().catch(() => null)));
  const table = id => [...document.querySelectorAll(`#${id} tr`)].slice(1);
  return JSON.stringify({
    title: document.title,
    images: images.length,
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
    confusion: table('confusion').map(tr => [...tr.querySelectorAll('td .count')].map(s => Number(s.textContent))),
    rows: table('runs').map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent.trim())),
    links: [...document.querySelectorAll('a')].map(a => a.getAttribute('href')),
    sections: [...document.querySelectorAll('section')].map(s => s.id),
    scripts: document.scripts.length,
    height: document.documentElement.scrollHeight,
  });
})()"""


def find_chromium(given):
    for name in [given, "chromium", "chromium-browser", "google-chrome"]:
        if name and shutil.which(name):
            return shutil.which(name)
    sys.exit("no Chromium found (Debian: apt install chromium)")


class Browser:
    def __init__(self, chromium):
        self.profile = tempfile.mkdtemp(prefix="imgclf-chromium-")
        self.process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={self.profile}",
             "--window-size=1280,1600", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        port = None
        for line in self.process.stderr:
            found = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if found:
                port = found.group(1)
                break
            if time.time() > deadline:
                break
        if port is None:
            self.close()
            sys.exit("Chromium did not start its DevTools endpoint")
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event, seconds=60):
        deadline = time.time() + seconds
        while not any(e.get("method") == event for e in self.events):
            if time.time() > deadline:
                raise RuntimeError(f"no {event} within {seconds} s")
            self.events.append(json.loads(self.ws.recv()))

    def close(self):
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def check(browser, page, screenshot):
    browser.events.clear()
    for domain in ["Page", "Runtime", "Log", "Network"]:
        browser.call(f"{domain}.enable")
    browser.call("Page.navigate", url=pathlib.Path(page).resolve().as_uri())
    browser.wait_for("Page.loadEventFired")
    seen = json.loads(browser.call("Runtime.evaluate", expression=INSPECT, awaitPromise=True,
                                   returnByValue=True)["result"]["value"])
    # the whole page, not only the window: the viewport grows to the document's height
    browser.call("Emulation.setDeviceMetricsOverride", width=1280, height=min(seen["height"], 16000),
                 deviceScaleFactor=1, mobile=False)
    shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
    if screenshot:
        pathlib.Path(screenshot).write_bytes(shot)
    image = Image.open(io.BytesIO(shot)).convert("RGB")
    errors, requests = [], []
    for e in browser.events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            errors.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(params["entry"]["text"])
        elif method == "Network.loadingFailed":
            errors.append(f"failed to load: {params.get('errorText')}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(("data:", "file:")):
                requests.append(url)
    seen.update(errors=errors, requests=requests, colours=len(image.getcolors(maxcolors=1 << 24) or []),
                screenshot=list(image.size))
    return seen


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page")
    parser.add_argument("--screenshot")
    parser.add_argument("--chromium")
    args = parser.parse_args()
    if not os.path.isfile(args.page):
        sys.exit(f"{args.page}: no such page")
    browser = Browser(find_chromium(args.chromium))
    try:
        print(json.dumps(check(browser, args.page, args.screenshot)))
    finally:
        browser.close()


if __name__ == "__main__":
    main()
