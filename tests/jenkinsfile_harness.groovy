// Test harness run by tests/test_jenkinsfile.py in ONE Groovy 2.4 JVM (Jenkins's Groovy line):
//   groovy jenkinsfile_harness.groovy RUN_FILE FILE...
// 1. parses (compiles) every FILE with GroovyShell, printing `PARSE OK path` or `PARSE ERROR path: message`;
// 2. loads RUN_FILE with the Pipeline steps it calls replaced by recorders (sh answers a chosen exit code) and
//    calls its hilciStage helper for each exit code, printing one JSON line per run: what the steps saw.
import groovy.json.JsonOutput
import org.codehaus.groovy.control.CompilationFailedException

String runFile = args[0]
for (String path : args.drop(1)) {
    try {
        new GroovyShell().parse(new File(path))
        println "PARSE OK ${path}"
    } catch (CompilationFailedException e) {
        println "PARSE ERROR ${path}: ${e.message.replace('\n', ' ')}"
    }
}

def scenarios = [[0, 'train', ''], [1, 'train', ''], [2, 'train', ''], [127, 'train', ''], [1, 'hil', 'orin-nx'],
                 [0, 'hil', 'orin-nx'], [3, 'hil', 'orin-nx']]
for (scenario in scenarios) {
    int rc = scenario[0]
    List calls = []
    Binding binding = new Binding()
    binding.setVariable('sh', { Map m -> calls << "sh:${m.script}".toString(); return m.returnStatus ? rc : null })
    binding.setVariable('unstable', { String msg -> calls << "unstable:${msg}".toString() })
    binding.setVariable('error', { String msg -> throw new IllegalStateException(msg) })
    binding.setVariable('catchError', { Map m, Closure body ->
        try { body() } catch (Exception e) { calls << "catchError:${m.buildResult}/${m.stageResult}:${e.message}".toString() }
    })
    binding.setVariable('timeout', { Map m, Closure body -> calls << "timeout:${m.time} ${m.unit}".toString(); body() })
    binding.setVariable('echo', { String msg -> calls << "echo:${msg}".toString() })
    binding.setVariable('unstash', { String name ->
        if (name.startsWith('missing')) { throw new IllegalStateException("No such saved stash '${name}'") }
        calls << "unstash:${name}".toString()
    })
    binding.setVariable('pipeline', { Closure body -> calls << 'pipeline' })
    Script script = new GroovyShell(binding).parse(new File(runFile))
    script.run()
    calls.clear()
    if (scenario[2]) {
        script.invokeMethod('hilciStage', [scenario[1], 60, scenario[2]] as Object[])
    } else {
        script.invokeMethod('hilciStage', [scenario[1], 60] as Object[])
    }
    String key = scenario[2] ? "${scenario[1]}-${scenario[2]}" : scenario[1]
    boolean passed = script.invokeMethod('hasPassed', scenario[2] ? [scenario[1], scenario[2]] as Object[] : [scenario[1]] as Object[])
    script.invokeMethod('unstashAll', [['outputs-train', 'missing-x']] as Object[])
    println 'RUN ' + JsonOutput.toJson([rc: rc, stage: scenario[1], board: scenario[2], key: key, passed: passed,
                                        calls: calls])
}

// 3. runs RUN_FILE's `pipeline { }` block as Declarative runs it, with one fault per scenario, printing one
//    `DECL {json}` line per scenario: which stages ran `hilci stage`, which were skipped and why, the build result.
//    The semantics kept (pipeline-model-definition's ModelInterpreter): an error thrown out of a stage (its
//    agent, steps or post) marks the build FAILURE and every later stage is "skipped due to earlier failure(s)",
//    its `when` never asked; a stage's post runs after its steps whatever they did, `unsuccessful` when the stage
//    result is worse than SUCCESS; the pipeline's post runs last, always. catchError/unstable set results without
//    throwing, as their steps do. Scripted steps inside `script {}` run as scripted Pipeline runs them: `stage`
//    runs its body, `parallel(map)` runs every branch (in order, or reversed with fault.reverse, as the declarative
//    `parallel` does too: what one branch needs must not come from another) and then throws the first error a
//    branch threw, `lock` and `podTemplate` run their bodies (a podTemplate whose yaml names fault.podFails
//    throws, as a pod that failed all its attempts does). `trace` lists the locks, pods and `hilci stage` runs
//    in order.
class Spec {
    String name
    Map<String, Object> parts = [:]
    List<Spec> children = []
}

def declarative = { String file, Map fault ->
    Map env = [:]
    Map state = [build: 'SUCCESS', stage: 'SUCCESS', current: '', firstError: null]
    List stack = []
    List ran = [], skipped = [], threw = [], published = [], trace = []
    List order = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'NOT_BUILT', 'ABORTED']
    def worse = { String a, String b -> order.indexOf(a) >= order.indexOf(b) ? a : b }
    Binding b = new Binding()
    b.setVariable('env', env)
    b.setVariable('params', [BOARDS: 'all'])
    b.setVariable('none', 'none')
    b.setVariable('scm', 'scm')
    b.setVariable('POD_LABEL', 'pod-label')
    def record = { String part -> { Object body -> stack.last().parts[part] = body } }
    for (part in ['agent', 'when', 'steps', 'post', 'options', 'parameters', 'stages', 'matrix', 'axes', 'environment',
                  'always', 'unsuccessful', 'beforeAgent', 'beforeOptions', 'expression', 'name', 'values']) {
        b.setVariable(part, record(part))
    }
    b.setVariable('axis', { Closure body -> Spec s = new Spec(name: 'axis'); stack << s; body(); stack.pop()
                                           stack.last().parts['axis'] = s })
    b.setVariable('values', { Object... vs -> stack.last().parts['values'] = vs as List })
    b.setVariable('stage', { Object name, Closure body ->
        if (stack) { Spec s = new Spec(name: name.toString()); stack << s; body(); stack.pop(); stack.last().children << s; return }
        String outer = state.current  // a scripted stage (inside `script {}`), run as it comes
        state.current = name.toString()
        state.stage = 'SUCCESS'
        try { body() } finally { state.current = outer }
    })
    b.setVariable('parallel', { Object branches ->
        if (!(branches instanceof Map)) { stack.last().parts['parallel'] = branches; return }
        List names = (branches.keySet() - ['failFast']) as List
        Exception first = null
        for (Object name in (fault.reverse ? names.reverse() : names)) {
            try { branches[name].call() } catch (Exception e) { first = first ?: e }
        }
        if (first != null) { throw first }
    })
    def collect = { Closure body, String name -> Spec s = new Spec(name: name); stack << s; body(); stack.pop(); s }
    def fail = { String where, Exception e ->
        if (state.firstError == null) { state.firstError = e }
        state.build = worse(state.build, 'FAILURE')
        state.stage = 'FAILURE'
        threw << "${where}: ${e.message}".toString()
    }
    def runPost
    runPost = { Spec stage, String label ->
        if (!stage.parts.post) { return }
        Spec post = collect(stage.parts.post, 'post')
        try {
            post.parts.always?.call()
            if (state.stage != 'SUCCESS') { post.parts.unsuccessful?.call() }
        } catch (Exception e) { fail("${label} post", e) }
    }
    def whenSays = { Spec stage ->
        if (!stage.parts.when) { return true }
        Spec when = collect(stage.parts.when, 'when')
        return when.parts.expression()
    }
    def runStages
    runStages = { List<Spec> stages, String board ->
        for (Spec stage in stages) {
            String label = board ? "${stage.name}-${board}" : stage.name
            if (state.firstError != null) { skipped << "${label}: earlier failure".toString(); continue }
            if (stage.parts.matrix) {
                Spec m = collect(stage.parts.matrix, 'matrix')
                Spec axis = collect(m.parts.axes, 'axes').parts.axis
                Object before = state.firstError, after = null  // cells run in parallel: none skips another
                for (Object value in axis.parts.values) {
                    after = after ?: state.firstError
                    state.firstError = before
                    env[axis.parts.name] = value
                    b.setVariable(axis.parts.name, value)
                    String cell = "${stage.name}-${value}"
                    if (!whenSays(m)) { skipped << "${cell}: when".toString(); continue }
                    if (fault.podFails == 'jetson') { fail(cell, new IllegalStateException('pod failed after its attempts')); continue }
                    runStages(collect(m.parts.stages, 'stages').children, value)
                }
                state.firstError = after ?: state.firstError
                continue
            }
            if (stage.parts.parallel) {  // branches run side by side: a failure in one skips none of the others
                Object before = state.firstError, after = null
                List branches = collect(stage.parts.parallel, 'parallel').children
                for (Spec branch in (fault.reverse ? branches.reverse() : branches)) {
                    after = after ?: state.firstError
                    state.firstError = before
                    runStages([branch], board)
                }
                state.firstError = after ?: state.firstError
                continue
            }
            if (!whenSays(stage)) { skipped << "${label}: when".toString(); continue }
            if (stage.parts.stages) {  // a sequence inside a parallel branch
                runStages(collect(stage.parts.stages, 'stages').children, board)
                continue
            }
            if (stage.parts.agent instanceof Closure && fault.podFails == stage.name) {
                fail(label, new IllegalStateException('pod failed after its attempts'))
                continue
            }
            state.stage = 'SUCCESS'
            state.current = stage.name
            try {
                stage.parts.steps?.call()
            } catch (Exception e) { fail(label, e) }
            runPost(stage, label)
        }
    }
    b.setVariable('sh', { Map m ->
        if (m.script.contains('pip install') && fault.pipFails == state.current) {
            throw new IllegalStateException('pip: Permission denied')
        }
        def hilci = (m.script =~ /^hilci stage (\w+)(?: --board ([\w-]+))?/)
        if (hilci.find()) {
            String stage = hilci.group(1)
            String id = hilci.group(2) ? "${stage}-${hilci.group(2)}".toString() : stage
            ran << "${id}@${state.current}".toString()
            trace << "run:${id}".toString()
            Map rc = fault.rc ?: [:]
            return rc[id] ?: rc[stage] ?: 0
        }
        if (m.returnStdout && m.script.startsWith('hilci plan')) { return (fault.cached ?: []).join('\n') }
        return m.returnStdout ? '' : 0
    })
    b.setVariable('timeout', { Map m, Closure body ->
        if (fault.timeoutIn == state.current) { throw new InterruptedException('Timeout has been exceeded') }
        body()
    })
    b.setVariable('junit', { Map m ->
        if (fault.noXml == state.current && !m.allowEmptyResults) {
            throw new IllegalStateException('No test report files were found. Configuration error?')
        }
        published << "${m.testResults}@${state.current}".toString()
    })
    b.setVariable('archiveArtifacts', { Map m ->
        if (fault.agentLost == state.current) { throw new IllegalStateException('agent lost') }
    })
    b.setVariable('stash', { Map m -> })
    b.setVariable('unstash', { String name -> })
    b.setVariable('echo', { String msg -> })
    b.setVariable('error', { String msg -> throw new IllegalStateException(msg) })
    b.setVariable('unstable', { String msg -> state.build = worse(state.build, 'UNSTABLE'); state.stage = worse(state.stage, 'UNSTABLE') })
    b.setVariable('catchError', { Map m, Closure body ->
        try { body() } catch (Exception e) {
            state.build = worse(state.build, m.buildResult ?: 'FAILURE')
            state.stage = worse(state.stage, m.stageResult ?: 'FAILURE')
        }
    })
    b.setVariable('script', { Closure body -> body() })
    b.setVariable('readTrusted', { String path -> path })
    b.setVariable('podTemplate', { Map m, Closure body ->
        trace << "pod:${m.yaml}".toString()
        if (fault.podFails && m.yaml.endsWith("/${fault.podFails}.yaml")) {
            throw new IllegalStateException('pod failed after its attempts')
        }
        body()
    })
    b.setVariable('lock', { Map m, Closure body -> trace << "lock:${m.resource}".toString(); body() })
    b.setVariable('retry', { Map m, Closure body -> body() })
    b.setVariable('kubernetesAgent', { -> 'kubernetesAgent' })
    b.setVariable('nonresumable', { -> 'nonresumable' })
    b.setVariable('node', { String label, Closure body -> body() })
    b.setVariable('container', { String name, Closure body -> body() })
    b.setVariable('checkout', { Object what -> })
    b.setVariable('pipeline', { Closure body ->
        Spec top = collect(body, 'pipeline')
        runStages(collect(top.parts.stages, 'stages').children, '')
        state.current = 'post'
        if (top.parts.post) {
            try { collect(top.parts.post, 'post').parts.always?.call() } catch (Exception e) { fail('pipeline post', e) }
        }
    })
    new GroovyShell(b).parse(new File(file)).run()
    return [fault: fault, result: state.build, ran: ran, skipped: skipped, threw: threw, published: published,
            trace: trace]
}

def faults = [[:], [rc: [train: 1]], [rc: [train: 2]], [pipFails: 'build'], [pipFails: 'plan'], [timeoutIn: 'train'],
              [podFails: 'train'], [podFails: 'jetson'], [noXml: 'quantize', rc: [quantize: 2]], [agentLost: 'quantize'],
              [podFails: 'report']]
for (fault in faults) {
    println 'DECL ' + JsonOutput.toJson(declarative(runFile, fault))
}
// 4. the same runs on a second file ($HILCI_GRAPH_FILE, a rendering with parallel branches), as `GRAPH {json}`.
String graphFile = System.getenv('HILCI_GRAPH_FILE')
if (graphFile) {
    List graphFaults = [[rc: [build: 2]], [podFails: 'build'], [reverse: true], [podFails: 'jetson-orin-nx'],
                        [rc: ['convert-orin-nx': 2]], [rc: ['hil-agx-orin': 3]], [cached: ['convert-orin-nx', 'hil-orin-nx']],
                        [rc: [quantize: 2]], [agentLost: 'convert-orin-nx'], [timeoutIn: 'hil-orin-nx']]
    for (fault in faults + graphFaults) {
        println 'GRAPH ' + JsonOutput.toJson(declarative(graphFile, fault))
    }
}
