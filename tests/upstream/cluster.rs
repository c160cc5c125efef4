//! The upstream cluster a test runs against, and kubectl pointed at it.

use std::path::PathBuf;
use std::process::Output;

/// The upstream test bed, as `scripts/upstream up` left it.
pub struct Upstream {
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Upstream {
    /// The running test bed named by `RUNBOOK_UPSTREAM_KUBECONFIG`.
    pub fn get() -> Upstream {
        let kubeconfig = std::env::var_os("RUNBOOK_UPSTREAM_KUBECONFIG").map(PathBuf::from).expect(
            "RUNBOOK_UPSTREAM_KUBECONFIG is not set: boot the test bed with `scripts/upstream up` and set it to \
             .upstream/kubeconfig (scripts/test does both)",
        );
        assert!(kubeconfig.exists(), "{} does not exist: is the test bed up?", kubeconfig.display());
        Upstream { kubeconfig, dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn kubeconfig_arg(&self) -> String {
        self.kubeconfig.display().to_string()
    }

    pub async fn kubectl_output(&self, args: &[&str], stdin: Option<&str>) -> Output {
        crate::common::kubectl_with(&self.kubeconfig, &self.dir.path().join("kube-cache"), args, stdin).await
    }

    /// Runs kubectl and expects success; returns stdout.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_stdin(args, "").await
    }

    /// Runs kubectl with `stdin` as its input and expects success; returns stdout.
    pub async fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.kubectl_output(args, Some(stdin)).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\n{}",
            out.status,
            crate::common::output_text(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A namespace of the test's own, deleted (without waiting) when dropped.
    pub async fn namespace(&self, name: &str) -> Namespace {
        self.kubectl(&["create", "namespace", name]).await;
        Namespace { name: name.to_string(), kubeconfig: self.kubeconfig.clone() }
    }
}

/// A namespace that removes itself.
pub struct Namespace {
    pub name: String,
    kubeconfig: PathBuf,
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new(crate::common::kubectl())
            .args(["delete", "namespace", &self.name, "--wait=false"])
            .env("KUBECONFIG", &self.kubeconfig)
            .output();
    }
}
