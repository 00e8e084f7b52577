"""Our own checks of the Jenkinsfile, with the line named: what neither Groovy nor Jenkins's linter can know.

Grammar is left to the tools that own it: Groovy parses the file (tests/jenkinsfile_harness.groovy) and Jenkins's
declarative linter judges directives, options and steps (`hilci jenkinsfile --lint`, /pipeline-model-converter/
validate). What stays here is the project's contract: one `pipeline` with `agent none`, every stage of the
definition present and no other, each running `hilci stage NAME` through `hilciStage` and publishing its JUnit
with `keepProperties: true`, each Kubernetes agent naming its pod template, container and retries, and every
`yamlFile` (and every `podTemplate(yaml: readTrusted(...))` file, per board) present in the repository (Jenkins
would only find out when the build runs). A per-board group inside a parallel branch is scripted: its stages are
`stage("NAME-${board}")` inside the steps of a Declarative stage, publishing in `finally`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from hilci.pipeline.model import Pipeline


class JenkinsfileError(ValueError):
    """The Jenkinsfile is malformed or does not match the pipeline; the message starts with 'FILE:LINE:'."""


KUBERNETES_REQUIRED = ("yamlFile", "defaultContainer", "retries")  # pod template, container, retry on pod loss


# --- reading: tokens, then a tree of blocks --------------------------------------------------------------------

@dataclass
class Token:
    kind: str  # word | string | punct | newline
    text: str
    line: int
    value: str = ""  # a string's contents


@dataclass
class Item:
    """One statement or block: its head tokens (`stage('x')`, `yamlFile 'a.yaml'`) and, for a block, its items."""

    head: list[Token]
    line: int
    block: list[Item] | None = None
    end_line: int = 0
    parent: Item | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.head[0].text if self.head else ""

    @property
    def args(self) -> list[Token]:
        return self.head[1:]

    def strings(self) -> list[str]:
        return [t.value for t in self.head if t.kind == "string"]

    def text(self) -> str:
        return " ".join(t.text for t in self.head)

    def children(self, name: str | None = None) -> list[Item]:
        return [c for c in (self.block or []) if name is None or c.name == name]

    def walk(self):
        yield self
        for child in self.block or []:
            yield from child.walk()


_WORD = re.compile(r"@?[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?[A-Za-z]?")


def tokenize(text: str, filename: str = "Jenkinsfile") -> list[Token]:
    """Groovy tokens enough for structure: words, strings (GString interpolation skipped), punctuation."""
    tokens: list[Token] = []
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            tokens.append(Token("newline", "\n", line))
            line += 1
            i += 1
        elif c in " \t\r":
            i += 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise JenkinsfileError(f"{filename}:{line}: comment '/*' is never closed")
            line += text.count("\n", i, end)
            i = end + 2
        elif c in "'\"":
            start_line = line
            i, value, line = _string(text, i, line, filename)
            tokens.append(Token("string", repr(value), start_line, value))
        elif m := _WORD.match(text, i):
            tokens.append(Token("word", m.group(), line))
            i = m.end()
        elif m := _NUMBER.match(text, i):
            tokens.append(Token("word", m.group(), line))
            i = m.end()
        else:
            tokens.append(Token("punct", c, line))
            i += 1
    return tokens


def _string(text: str, i: int, line: int, filename: str) -> tuple[int, str, int]:
    """Read a quoted string from text[i]; return the index after it, its contents and the line reached."""
    quote = text[i] * 3 if text.startswith(text[i] * 3, i) else text[i]
    interpolates = quote[0] == '"'
    start_line = line
    i += len(quote)
    out = []
    n = len(text)
    while i < n:
        if text.startswith(quote, i):
            return i + len(quote), "".join(out), line
        c = text[i]
        if c == "\n":
            if len(quote) == 1:
                break
            line += 1
        if c == "\\" and i + 1 < n:
            out.append(text[i:i + 2])
            i += 2
            continue
        if interpolates and text.startswith("${", i):
            depth, j = 0, i
            while j < n:
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                elif text[j] in "'\"":
                    j, _, line = _string(text, j, line, filename)
                    continue
                elif text[j] == "\n":
                    line += 1
                j += 1
            out.append(text[i:j + 1])
            i = j + 1
            continue
        out.append(c)
        i += 1
    raise JenkinsfileError(f"{filename}:{start_line}: string starting with {quote} is never closed")


_CLOSE = {")": "(", "]": "[", "}": "{"}


def parse(text: str, filename: str = "Jenkinsfile") -> Item:
    """The Jenkinsfile as a tree of items; unbalanced braces, brackets or parentheses raise, naming the line."""
    tokens = tokenize(text, filename)
    indents = [len(raw) - len(raw.lstrip(" \t")) for raw in text.split("\n")]
    root = Item(head=[], line=1, block=[])
    stack = [root]
    head: list[Token] = []
    nesting: list[Token] = []  # open ( and [ inside the current statement

    def flush() -> None:
        if head:
            stack[-1].block.append(Item(head=list(head), line=head[0].line, parent=stack[-1]))
            head.clear()

    previous: Token | None = None
    for tok in tokens:
        starts_line = previous is None or previous.kind == "newline"
        previous = tok
        if tok.kind == "punct" and tok.text in "([":
            nesting.append(tok)
            head.append(tok)
        elif tok.kind == "punct" and tok.text in ")]":
            if not nesting or nesting[-1].text != _CLOSE[tok.text]:
                raise JenkinsfileError(f"{filename}:{tok.line}: unbalanced '{tok.text}'")
            nesting.pop()
            head.append(tok)
        elif tok.kind == "punct" and tok.text == "{":
            if nesting:  # a closure inside an argument list: part of the statement
                nesting.append(tok)
                head.append(tok)
                continue
            item = Item(head=list(head), line=head[0].line if head else tok.line, block=[], parent=stack[-1])
            head.clear()
            stack[-1].block.append(item)
            stack.append(item)
            item.open_line = tok.line  # type: ignore[attr-defined]
        elif tok.kind == "punct" and tok.text == "}":
            if nesting:
                if nesting[-1].text != "{":
                    raise JenkinsfileError(f"{filename}:{tok.line}: unbalanced '}}' (expected a closing "
                                           f"'{')' if nesting[-1].text == '(' else ']'}' for line {nesting[-1].line})")
                nesting.pop()
                head.append(tok)
                continue
            flush()
            if len(stack) == 1:
                raise JenkinsfileError(f"{filename}:{tok.line}: unbalanced '}}': no block is open here")
            block = stack.pop()
            block.end_line = tok.line
            opened = getattr(block, "open_line", block.line)
            if starts_line and opened != tok.line and indents[tok.line - 1] != indents[opened - 1]:
                raise JenkinsfileError(
                    f"{filename}:{tok.line}: unbalanced braces: this '}}' closes the '{{' of line {opened} "
                    f"('{block.text() or 'block'}'), which is indented differently: a brace is missing or extra")
        elif tok.kind == "newline" or (tok.kind == "punct" and tok.text == ";"):
            if not nesting and not (head and head[-1].kind == "punct" and head[-1].text in ",=+&|?:."):
                flush()
        else:
            head.append(tok)
    if nesting:
        raise JenkinsfileError(f"{filename}:{nesting[-1].line}: unbalanced '{nesting[-1].text}': never closed")
    flush()
    if len(stack) > 1:
        block = stack[-1]
        raise JenkinsfileError(f"{filename}:{getattr(block, 'open_line', block.line)}: unbalanced '{{' of "
                               f"'{block.text() or 'block'}': never closed")
    return root


# --- checking -------------------------------------------------------------------------------------------------

@dataclass
class _Checker:
    filename: str
    pipeline: Pipeline
    root: Path
    axis_values: dict[str, list[str]] = field(default_factory=dict)

    def fail(self, item: Item | Token | int, message: str) -> None:
        line = item if isinstance(item, int) else item.line
        raise JenkinsfileError(f"{self.filename}:{line}: {message}")

    def once(self, block: Item, name: str, what: str) -> Item | None:
        found = block.children(name)
        if len(found) > 1:
            self.fail(found[1], f"'{name}' given twice in {what}")
        return found[0] if found else None


def check(text: str, pipeline: Pipeline, root: Path, filename: str = "Jenkinsfile") -> None:
    """Raise JenkinsfileError naming the first problem's line; return None when the Jenkinsfile is sound."""
    tree = parse(text, filename)
    c = _Checker(filename, pipeline, root)
    methods = {item.args[0].text: item for item in tree.block
               if item.name == "def" and item.block is not None and item.args}
    pipelines = [item for item in tree.block if item.name == "pipeline" and item.block is not None]
    if len(pipelines) != 1:
        c.fail(pipelines[1] if pipelines else 1, "a declarative Jenkinsfile has exactly one 'pipeline { }' block")
    top = pipelines[0]
    agent = c.once(top, "agent", "pipeline")
    if agent is None or agent.block is not None or [t.text for t in agent.args] != ["none"]:
        c.fail(agent or top, "the pipeline must say 'agent none': each stage names its own pod")
    stages = c.once(top, "stages", "pipeline")
    if stages is None or stages.block is None:
        c.fail(stages or top, "the pipeline has no 'stages' block")
    leaves: dict[str, Item] = {}
    _collect_stages(c, stages, leaves, matrix=None)
    _check_pipeline_stages(c, leaves, methods, top)
    _check_pod_templates(c, tree)


_SCRIPTED = re.compile(r"^([\w-]+)-\$\{(\w+)\}$")  # a scripted per-board stage: "convert-${board}"


def scripted_stages(steps: Item) -> list[tuple[str, Item]]:
    """The scripted per-board stages inside a Declarative stage's steps, as (definition stage name, item)."""
    found = []
    for item in steps.walk():
        if item is not steps and item.name == "stage" and item.block is not None and item.strings():
            m = _SCRIPTED.match(item.strings()[0])
            if m:
                found.append((m.group(1), item))
    return found


def _check_pod_templates(c: _Checker, tree: Item) -> None:
    """Each scripted `podTemplate(yaml: readTrusted(PATH))` names a file here (`${board}`: every board's)."""
    boards = [b.name for b in c.pipeline.boards]
    for item in tree.walk():
        if item.name != "podTemplate":
            continue
        for path in item.strings():
            refs = set(re.findall(r"\$\{(\w+)\}", path))
            paths = [path]
            for ref in refs:
                paths = [p.replace("${" + ref + "}", b) for p in paths for b in boards]
            for one in paths:
                if not (c.root / one).is_file():
                    c.fail(item, f"podTemplate file '{one}' does not exist")


def _collect_stages(c: _Checker, stages: Item, leaves: dict[str, Item], matrix: Item | None,
                    branch: bool = False) -> None:
    """Every leaf stage (one with `steps`) by name, through nested stages, parallel and matrix blocks. Inside a
    parallel branch or a matrix (`branch`), Declarative refuses another `parallel` or `matrix`: named here, as
    Groovy cannot know it and Jenkins would say so only when the build starts."""
    for stage in stages.block or []:
        if stage.name != "stage" or stage.block is None:
            continue  # not ours to judge: Jenkins's linter names misplaced directives
        names = stage.strings()
        name = names[0] if names else ""
        nested = [*stage.children("parallel"), *stage.children("matrix")]
        if branch and nested:
            c.fail(nested[0], f"stage '{name}': '{nested[0].name}' inside a parallel branch or a matrix: "
                              "Declarative allows it only in a stage that is not itself in one")
        for agent in stage.children("agent"):
            _check_agent(c, agent, f"stage '{name}'", matrix)
        if stage.children("steps"):
            cells = scripted_stages(stage.children("steps")[0])
            for leaf, item in cells or [(name, stage)]:
                if leaf in leaves:
                    c.fail(item, f"stage '{leaf}' appears twice")
                leaves[leaf] = item
        for inner in stage.children("stages"):
            _collect_stages(c, inner, leaves, matrix, branch)
        for inner in stage.children("parallel"):
            _collect_stages(c, inner, leaves, matrix, True)
        for mat in stage.children("matrix"):
            _collect_matrix(c, mat, leaves)


def _collect_matrix(c: _Checker, matrix: Item, leaves: dict[str, Item]) -> None:
    values: dict[str, list[str]] = {}
    for axes in matrix.children("axes"):
        for axis in axes.children("axis"):
            name, vals = axis.children("name"), axis.children("values")
            if name and vals and name[0].strings():
                values[name[0].strings()[0]] = vals[0].strings()
    matrix.axis_values = values  # type: ignore[attr-defined]
    for agent in matrix.children("agent"):
        _check_agent(c, agent, "matrix", matrix)
    for stages in matrix.children("stages"):
        _collect_stages(c, stages, leaves, matrix, True)


def _check_agent(c: _Checker, agent: Item, where: str, matrix: Item | None) -> None:
    """A Kubernetes agent names its pod template (which must exist here), its container and its retries."""
    for kube in agent.children("kubernetes"):
        for required in KUBERNETES_REQUIRED:
            if c.once(kube, required, "kubernetes agent") is None:
                c.fail(kube, f"kubernetes agent of {where} lacks '{required}'")
        yaml_file = c.once(kube, "yamlFile", "kubernetes agent")
        if len(yaml_file.strings()) != 1:
            c.fail(yaml_file, "yamlFile needs one quoted path")
        for path in _expand(c, yaml_file, yaml_file.strings()[0], matrix):
            if not (c.root / path).is_file():
                c.fail(yaml_file, f"yamlFile '{path}' does not exist")


def _expand(c: _Checker, at: Item, text: str, matrix: Item | None) -> list[str]:
    """A GString with matrix axes (`jetson-${BOARD}.yaml`) as every value it takes."""
    refs = re.findall(r"\$\{(?:env\.)?(\w+)\}", text)
    if not refs:
        return [text]
    axes = getattr(matrix, "axis_values", {}) if matrix is not None else {}
    out = [text]
    for ref in refs:
        if ref not in axes:
            c.fail(at, f"'${{{ref}}}' is not a matrix axis here, so '{text}' cannot be resolved")
        out = [s.replace("${" + ref + "}", v).replace("${env." + ref + "}", v) for s in out for v in axes[ref]]
    return out


def _check_pipeline_stages(c: _Checker, leaves: dict[str, Item], methods: dict[str, Item], top: Item) -> None:
    """Our pipeline's contract: each stage present, running `hilci stage NAME`, publishing its JUnit."""
    wanted = c.pipeline.names
    for name, stage in leaves.items():
        if name not in wanted and name != "plan":  # the plan step (ci/jenkins/jenkinsfile.py: _plan_stage)
            c.fail(stage, f"stage '{name}' is not in the pipeline definition (stages: {', '.join(wanted)})")
    for name in wanted:
        if name not in leaves:
            c.fail(top, f"pipeline stage '{name}' does not appear in the Jenkinsfile")
    runner = methods.get("hilciStage")
    if runner is None:
        c.fail(top, "no 'def hilciStage(...)': every stage runs `hilci stage NAME` through it")
    if not any("hilci stage " in s for item in runner.walk() for s in item.strings()):
        c.fail(runner, "hilciStage does not run `hilci stage`")
    _check_nothing_throws(c, runner, top)
    for name in wanted:
        stage = leaves[name]
        defn = c.pipeline.stage(name)
        scripted = not stage.children("steps")  # a scripted per-board stage: its body is its steps
        steps = stage if scripted else stage.children("steps")[0]
        calls = [i for i in steps.walk() if i.name == "hilciStage"]
        if not any(call.strings()[:1] == [name] for call in calls):
            c.fail(steps, f"stage '{name}' does not run hilciStage('{name}', ...) (`hilci stage {name}`)")
        if defn.matrix and not any(t.text.endswith(("BOARD", "board")) for call in calls for t in call.args):
            c.fail(steps, f"matrix stage '{name}' does not pass its board to hilciStage")
        if scripted:
            always = [i for i in stage.walk() if i.name == "finally"]
            where = "finally { junit ... } after its steps"
        else:
            always = [cond for post in stage.children("post") for cond in post.children("always")]
            where = "post { always { junit ... } }"
        junit = [i for cond in always for i in cond.walk() if i.name == "junit"]
        if not junit:
            c.fail(stage, f"stage '{name}' does not publish JUnit in {where}")
        call = junit[0].text().replace(" ", "")
        if "keepProperties:true" not in call:
            c.fail(junit[0], f"stage '{name}': junit needs keepProperties: true (measurements are properties)")
        if "allowEmptyResults:true" not in call:
            c.fail(junit[0], f"stage '{name}': junit needs allowEmptyResults: true (a stage that failed before "
                             "writing its JUnit must not throw there: Declarative would skip every later stage)")
        expected = f"reports/junit/{name}-" if defn.matrix else f"reports/junit/{name}.xml"
        if not any(expected in s for s in junit[0].strings()):
            c.fail(junit[0], f"stage '{name}': junit does not read its own report ({expected}...)")


def _check_nothing_throws(c: _Checker, runner: Item, top: Item) -> None:
    """In Declarative an error thrown out of a stage skips every later stage, the report included: hilciStage
    runs its steps and timeout inside catchError, and the pipeline's `post { always }` runs each gathering stage
    that did not run (after a pod that failed all its attempts)."""
    guarded = {id(i) for guard in runner.walk() if guard.name == "catchError" for i in guard.walk() if i is not guard}
    for item in runner.walk():
        if item.name in ("timeout", "sh") and id(item) not in guarded:
            c.fail(item, f"hilciStage: '{item.name}' outside catchError: an error it throws (a failed install, "
                         "the timeout firing) would skip every later stage, the report included")
    gathers = [s.name for s in c.pipeline.stages if s.gathers]
    always = [i for post in top.children("post") for cond in post.children("always") for i in cond.walk()]
    for name in gathers:
        if not any(i.name == "hilciStage" and i.strings()[:1] == [name] for i in always):
            c.fail(top, f"the pipeline's post {{ always {{ ... }} }} does not run hilciStage('{name}'): after a "
                        f"stage that threw (a pod that failed all its attempts) '{name}' would never run")

