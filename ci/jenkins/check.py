"""A checker of declarative Jenkinsfiles: what Groovy's parser cannot see, with the line named.

Groovy compiles any well-formed script, so a misspelt directive (`postt`), an unknown Kubernetes agent option
or a `yamlFile` that does not exist only fail once Jenkins runs the build. This module reads the Jenkinsfile
into a tree of blocks and checks it against the declarative grammar (pipeline, stages, stage, matrix, agent,
kubernetes, options, when, post, ...) and against our pipeline: every stage present, running `hilci stage`,
publishing JUnit with `keepProperties: true`, and every pod template file present.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ci.model import Pipeline


class JenkinsfileError(ValueError):
    """The Jenkinsfile is malformed or does not match the pipeline; the message starts with 'FILE:LINE:'."""


# --- the declarative grammar (directives each block may hold) ---------------------------------------------------

PIPELINE_DIRECTIVES = {"agent", "stages", "options", "post", "environment", "parameters", "triggers", "tools",
                       "libraries"}
STAGE_DIRECTIVES = {"agent", "environment", "input", "options", "post", "steps", "stages", "parallel", "matrix",
                    "tools", "when", "failFast"}
STAGE_BODIES = {"steps", "stages", "parallel", "matrix"}
MATRIX_DIRECTIVES = {"axes", "excludes", "agent", "environment", "input", "options", "post", "stages", "tools",
                     "when"}
AGENT_KINDS = {"none", "any", "label", "node", "docker", "dockerfile", "kubernetes"}
KUBERNETES_OPTIONS = {
    "yamlFile", "yaml", "yamlMergeStrategy", "defaultContainer", "retries", "podRetention", "inheritFrom",
    "cloud", "namespace", "label", "idleMinutes", "activeDeadlineSeconds", "serviceAccount", "nodeSelector",
    "workspaceVolume", "workingDir", "agentConnectTimeout", "slaveConnectTimeout", "customWorkspace",
    "instanceCap", "showRawYaml", "supplementalGroups", "containerTemplate", "containerTemplates",
    "inheritYamlMergeStrategy", "podRetentionPolicy", "agentInjection", "runAsUser", "runAsGroup",
}
POD_RETENTION = {"always()", "never()", "onFailure()", "default()"}
OPTIONS = {
    "timeout", "disableConcurrentBuilds", "buildDiscarder", "lock", "retry", "timestamps", "skipDefaultCheckout",
    "skipStagesAfterUnstable", "checkoutToSubdirectory", "disableResume", "newContainerPerStage",
    "overrideIndexTriggers", "parallelsAlwaysFailFast", "preserveStashes", "quietPeriod", "ansiColor",
    "durabilityHint", "disableRestartFromStage", "rateLimitBuilds", "copyArtifactPermission",
}
POST_CONDITIONS = {"always", "changed", "fixed", "regression", "aborted", "failure", "success", "unstable",
                   "unsuccessful", "cleanup"}
WHEN_CONDITIONS = {"expression", "branch", "environment", "not", "allOf", "anyOf", "equals", "changeRequest",
                   "buildingTag", "tag", "changelog", "changeset", "triggeredBy"}
WHEN_OPTIONS = {"beforeAgent", "beforeInput", "beforeOptions"}
OPAQUE = {"steps", "environment", "parameters", "triggers", "tools", "libraries", "input", "script"}


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

    def only(self, block: Item, allowed: set[str], what: str) -> None:
        for child in block.block or []:
            if child.name not in allowed:
                self.fail(child, f"unknown directive '{child.name}' in {what} "
                                 f"(allowed: {', '.join(sorted(allowed))})")

    def once(self, block: Item, name: str, what: str) -> Item | None:
        found = block.children(name)
        if len(found) > 1:
            self.fail(found[1], f"'{name}' given twice in {what}")
        return found[0] if found else None


def check(text: str, pipeline: Pipeline, root: Path, filename: str = "Jenkinsfile") -> None:
    """Raise JenkinsfileError naming the first problem's line; return None when the Jenkinsfile is sound."""
    tree = parse(text, filename)
    c = _Checker(filename, pipeline, root)
    methods = {}
    pipelines = []
    for item in tree.block:
        if item.name == "pipeline" and item.block is not None:
            pipelines.append(item)
        elif item.name == "def" and item.block is not None and len(item.args) >= 1:
            methods[item.args[0].text] = item
        elif item.name in ("import", "def", "@Field", "@Library") or item.name.startswith("@"):
            continue
        else:
            c.fail(item, f"unexpected '{item.text()[:40]}' outside the pipeline block")
    if len(pipelines) != 1:
        c.fail(pipelines[1] if pipelines else 1, "a declarative Jenkinsfile has exactly one 'pipeline { }' block")
    top = pipelines[0]
    c.only(top, PIPELINE_DIRECTIVES, "pipeline")
    agent = c.once(top, "agent", "pipeline")
    if agent is None or agent.block is not None or [t.text for t in agent.args] != ["none"]:
        c.fail(agent or top, "the pipeline must say 'agent none': each stage names its own pod")
    stages = c.once(top, "stages", "pipeline")
    if stages is None:
        c.fail(top, "the pipeline has no 'stages' block")
    for opts in top.children("options"):
        _check_options(c, opts)
    for post in top.children("post"):
        _check_post(c, post, "pipeline")
    leaves: dict[str, Item] = {}
    _check_stages(c, stages, leaves, matrix=None)
    _check_pipeline_stages(c, leaves, methods, top)


def _check_stages(c: _Checker, stages: Item, leaves: dict[str, Item], matrix: Item | None) -> None:
    if stages.block is None:
        c.fail(stages, "'stages' must be a block")
    if not stages.block:
        c.fail(stages, "'stages' holds no stage")
    for stage in stages.block:
        if stage.name != "stage" or stage.block is None:
            c.fail(stage, f"unknown directive '{stage.name}' in stages (allowed: stage)")
        names = stage.strings()
        if len(names) != 1:
            c.fail(stage, "a stage needs one quoted name: stage('NAME') { ... }")
        _check_stage(c, stage, names[0], leaves, matrix)


def _check_stage(c: _Checker, stage: Item, name: str, leaves: dict[str, Item], matrix: Item | None) -> None:
    c.only(stage, STAGE_DIRECTIVES, f"stage '{name}'")
    bodies = [d for d in stage.block if d.name in STAGE_BODIES]
    if len(bodies) != 1:
        c.fail(stage, f"stage '{name}' needs exactly one of steps, stages, parallel or matrix")
    body = bodies[0]
    for directive in stage.block:
        _check_common(c, directive, f"stage '{name}'", matrix)
    if body.name == "steps":
        if name in leaves:
            c.fail(stage, f"stage '{name}' appears twice")
        leaves[name] = stage
    elif body.name == "stages":
        _check_stages(c, body, leaves, matrix)
    elif body.name == "parallel":
        _check_stages(c, body, leaves, matrix)
    else:
        _check_matrix(c, body, leaves)


def _check_matrix(c: _Checker, matrix: Item, leaves: dict[str, Item]) -> None:
    c.only(matrix, MATRIX_DIRECTIVES, "matrix")
    axes = c.once(matrix, "axes", "matrix")
    stages = c.once(matrix, "stages", "matrix")
    if axes is None or stages is None:
        c.fail(matrix, "a matrix needs 'axes' and 'stages'")
    c.only(axes, {"axis"}, "axes")
    values: dict[str, list[str]] = {}
    for axis in axes.block:
        c.only(axis, {"name", "values"}, "axis")
        name, vals = c.once(axis, "name", "axis"), c.once(axis, "values", "axis")
        if name is None or vals is None or not name.strings() or not vals.strings():
            c.fail(axis, "an axis needs a quoted 'name' and 'values'")
        values[name.strings()[0]] = vals.strings()
    matrix.axis_values = values  # type: ignore[attr-defined]
    for directive in matrix.block:
        _check_common(c, directive, "matrix", matrix)
    _check_stages(c, stages, leaves, matrix)


def _check_common(c: _Checker, directive: Item, where: str, matrix: Item | None) -> None:
    if directive.name == "agent":
        _check_agent(c, directive, where, matrix)
    elif directive.name == "options":
        _check_options(c, directive)
    elif directive.name == "post":
        _check_post(c, directive, where)
    elif directive.name == "when":
        _check_when(c, directive)
    elif directive.name in STAGE_DIRECTIVES | MATRIX_DIRECTIVES and directive.name not in {"failFast"}:
        if directive.block is None:
            c.fail(directive, f"'{directive.name}' in {where} must be a block")


def _check_agent(c: _Checker, agent: Item, where: str, matrix: Item | None) -> None:
    if agent.block is None:
        kind = agent.args[0].text if agent.args else ""
        if kind not in ("none", "any"):
            c.fail(agent, f"agent in {where}: expected 'none', 'any' or a block, not '{agent.text()}'")
        return
    c.only(agent, AGENT_KINDS, f"agent of {where}")
    for kube in agent.children("kubernetes"):
        if kube.block is None:
            c.fail(kube, "'kubernetes' agent must be a block")
        c.only(kube, KUBERNETES_OPTIONS, "kubernetes agent")
        for required in ("yamlFile", "defaultContainer", "retries"):
            if c.once(kube, required, "kubernetes agent") is None:
                c.fail(kube, f"kubernetes agent of {where} lacks '{required}'")
        retention = c.once(kube, "podRetention", "kubernetes agent")
        if retention is not None and "".join(t.text for t in retention.args) not in POD_RETENTION:
            c.fail(retention, f"podRetention must be one of {', '.join(sorted(POD_RETENTION))}")
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


def _check_options(c: _Checker, options: Item) -> None:
    if options.block is None:
        c.fail(options, "'options' must be a block")
    for opt in options.block:
        if opt.name not in OPTIONS:
            c.fail(opt, f"unknown option '{opt.name}' (known: {', '.join(sorted(OPTIONS))})")


def _check_post(c: _Checker, post: Item, where: str) -> None:
    if post.block is None:
        c.fail(post, "'post' must be a block")
    c.only(post, POST_CONDITIONS, f"post of {where}")
    for cond in post.block:
        if cond.block is None:
            c.fail(cond, f"post condition '{cond.name}' must be a block")


def _check_when(c: _Checker, when: Item) -> None:
    if when.block is None:
        c.fail(when, "'when' must be a block")
    c.only(when, WHEN_CONDITIONS | WHEN_OPTIONS, "when")
    for cond in when.block:
        if cond.name in ("not", "allOf", "anyOf"):
            _check_when(c, cond)


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
    for name in wanted:
        stage = leaves[name]
        defn = c.pipeline.stage(name)
        steps = stage.children("steps")[0]
        calls = [i for i in steps.walk() if i.name == "hilciStage"]
        if not any(call.strings()[:1] == [name] for call in calls):
            c.fail(steps, f"stage '{name}' does not run hilciStage('{name}', ...) (`hilci stage {name}`)")
        if defn.matrix and not any(t.text.endswith("BOARD") for call in calls for t in call.args):
            c.fail(steps, f"matrix stage '{name}' does not pass its board to hilciStage")
        always = [cond for post in stage.children("post") for cond in post.children("always")]
        junit = [i for cond in always for i in cond.walk() if i.name == "junit"]
        if not junit:
            c.fail(stage, f"stage '{name}' does not publish JUnit in post {{ always {{ junit ... }} }}")
        call = junit[0].text().replace(" ", "")
        if "keepProperties:true" not in call:
            c.fail(junit[0], f"stage '{name}': junit needs keepProperties: true (measurements are properties)")
        expected = f"reports/junit/{name}-" if defn.matrix else f"reports/junit/{name}.xml"
        if not any(expected in s for s in junit[0].strings()):
            c.fail(junit[0], f"stage '{name}': junit does not read its own report ({expected}...)")
