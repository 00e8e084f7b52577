"""Which store credentials a Jenkins build binds: the Groovy helper the Jenkinsfile renders (docs/store.md).

Every pod's Secret (`hilci-store`, envFrom in podtemplates/) holds the store URL and the UNTRUSTED keys (read
everything, write `branches/*` only). A build of a trusted branch (hilci.yaml `trusted_branches`), never a pull
request (Jenkins sets CHANGE_ID on every PR build), binds the write keys of the Jenkins credential
`hilci-store-trusted` over them for each `hilci stage`. The choice is made here, from the same patterns the
store's trust uses, so the Jenkinsfile and hilci.store.trust cannot disagree; Jenkins's credential scoping
(the credential visible only to the trusted branches' jobs) is what enforces it against a PR's own Jenkinsfile.
"""

from __future__ import annotations

import re

from hilci.store.trust import DEFAULT_TRUSTED

TRUSTED_CREDENTIALS = "hilci-store-trusted"  # a "username with password": access key id / secret access key


def glob_regex(pattern: str) -> str:
    """A `trusted_branches` shell glob (`release/*`) as the Java regex Groovy's ==~ matches whole."""
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


def store_keys_helper(trusted: tuple[str, ...] = DEFAULT_TRUSTED) -> str:
    """The Groovy of `storeCredentialsId()` and `withStoreKeys { }` (hilciStage wraps its `sh` in the latter)."""
    regexes = ", ".join("'" + glob_regex(p).replace("\\", "\\\\").replace("'", "\\'") + "'" for p in trusted)
    return f"""\
// The store keys this build holds (docs/store.md "Trusted writers"): the pods' Secret gives every build the
// untrusted keys (read everything, write branches/* only); a build of a trusted branch ({", ".join(trusted)}),
// never a pull request, binds the write keys of the credential '{TRUSTED_CREDENTIALS}' over them.
def storeCredentialsId() {{
    String branch = env.BRANCH_NAME ?: ''
    boolean trusted = !env.CHANGE_ID && [{regexes}].any {{ branch ==~ it }}
    return trusted ? '{TRUSTED_CREDENTIALS}' : ''
}}

// Runs `body` with the store keys storeCredentialsId() chooses (none bound: the pod's untrusted keys).
def withStoreKeys(Closure body) {{
    String id = storeCredentialsId()
    if (!id) {{
        return body()
    }}
    return withCredentials([usernamePassword(credentialsId: id, usernameVariable: 'AWS_ACCESS_KEY_ID',
                                             passwordVariable: 'AWS_SECRET_ACCESS_KEY')]) {{ body() }}
}}
"""
