"""The EBB_* options are documented from the table the library parses with
(src/base/options_table.h): the README's table is exactly what
`ebb options --markdown` prints, and `ebb run --help` lists every option."""
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import LIB, ROOT, TOOL, child_env  # noqa: E402

HEADER = "| variable | default | meaning |"


def tool(*args):
    p = subprocess.run([TOOL, *args], env=child_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, (args, p.returncode, p.stderr)
    return p.stdout


def readme_table():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index(HEADER)
    end = text.index("\n\n", start)
    return text[start:end + 1]


class OptionsTableTest(unittest.TestCase):
    def test_readme_table_is_the_generated_one(self):
        generated = tool("options", "--markdown")
        self.assertEqual(readme_table(), generated,
                         "README.md's options table differs from `build/ebb options --markdown`; "
                         "paste the tool's output into the README")

    def test_every_option_is_in_run_help(self):
        names = re.findall(r"^\| `(EBB_[A-Z_]+)=", tool("options", "--markdown"), re.M)
        self.assertGreaterEqual(len(names), 16)
        helptext = tool("run", "--help")
        for name in names:
            self.assertIn("  %s=" % name, helptext)

    def test_a_documented_option_is_read_by_the_library(self):
        # One documented variable with a bad value, through the library the
        # tests built: it is read from the same table, so it says so.
        env = child_env({"LD_PRELOAD": LIB, "EBB_HEAPS": "many"})
        p = subprocess.run(["/bin/true"], env=env, capture_output=True, text=True, timeout=60)
        self.assertIn("ignoring EBB_HEAPS=many", p.stderr)


if __name__ == "__main__":
    unittest.main()
