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
