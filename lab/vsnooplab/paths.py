"""Where the lab finds the project's binaries and scripts."""
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("VSNOOP_BUILD", os.path.join(REPO, "build", "release"))
VSNOOPD = os.path.join(BUILD, "daemon", "vsnoopd")
VSNOOPCTL = os.path.join(BUILD, "daemon", "vsnoopctl")
FLOWSEND = os.path.join(REPO, "lab", "bin", "flowsend.py")
FLOWSINK = os.path.join(REPO, "lab", "bin", "flowsink.py")
PYTHON = "/usr/bin/python3"  # Debian's: it has scapy and matplotlib from apt
