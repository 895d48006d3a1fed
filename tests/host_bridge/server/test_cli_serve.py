"""`svc-host serve` on the command line: help without heavy imports, refusals with a fix."""
from __future__ import annotations

import subprocess
import sys


def test_serve_help_is_instant_and_lists_the_options():
    out = subprocess.run([sys.executable, "-m", "host_bridge.cli", "serve", "--help"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0
    for flag in ("--preset", "--osc-port", "--allow", "--jack", "--device", "--no-audio", "--input-root",
                 "--block-size", "--midi-port", "--transpose"):
        assert flag in out.stdout
    probe = subprocess.run([sys.executable, "-c", "import sys, host_bridge.cli; host_bridge.cli.build_parser(); "
                            "print('torch' in sys.modules)"], capture_output=True, text=True, timeout=30)
    assert probe.stdout.strip() == "False"


def test_public_bind_without_allow_list_is_refused(capsys):
    from host_bridge.cli import main

    assert main(["serve", "--host", "0.0.0.0", "--no-audio", "--model", "nothing"]) == 2
    assert "--allow ADDR" in capsys.readouterr().err


def test_unavailable_audio_and_midi_say_what_to_do(random_model_dir, capsys):
    from host_bridge.cli import main

    try:
        import jack  # noqa: F401  (JACK-Client raises OSError when libjack itself is missing)
        jack_loads = True
    except (ImportError, OSError):
        jack_loads = False
    assert main(["serve", "--model", str(random_model_dir), "--jack", "--jack-server", "no-such-server",
                 "--osc-port", "0"]) == 2
    err = capsys.readouterr().err
    if jack_loads:
        assert "cannot connect to the JACK server 'no-such-server'" in err and "--no-audio" in err
    else:  # a machine without libjack: the message says what to install
        assert "libjack-jackd2-0" in err and "pip install JACK-Client" in err and "--no-audio" in err
    assert main(["serve", "--model", str(random_model_dir), "--no-audio", "--osc-port", "0",
                 "--midi-port", "nope"]) == 2
    err = capsys.readouterr().err
    assert "cannot open MIDI input 'nope'" in err
