/**
 * Certificates and kubeconfig for the simulated API server.
 *
 * At start the server makes a throw-away CA and a server certificate for
 * `127.0.0.1` and `localhost` with the `openssl` command line tool, in a temp
 * directory that {@link removeCredentials} deletes again.
 *
 * @module
 */

/** Files and PEM texts made by {@link makeCertificates}. */
export interface Certificates {
  /** Temp directory holding every file. */
  dir: string;
  /** CA certificate (PEM). */
  caPem: string;
  /** Server certificate (PEM). */
  certPem: string;
  /** Server private key (PEM). */
  keyPem: string;
}

const caConfig = `[req]
distinguished_name = dn
x509_extensions = v3_ca
prompt = no
[dn]
CN = ha-controller-sim-ca
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
`;

const serverConfig = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = kube-apiserver-sim
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`Expected openssl ${args[0]} to succeed, it failed: ${err}`);
  }
}

/** Makes a CA and a server certificate (EC P-256, valid two days) in a new temp dir. */
export async function makeCertificates(dir?: string): Promise<Certificates> {
  const where = dir ?? await Deno.makeTempDir({ prefix: "apiserver-sim-" });
  await Deno.writeTextFile(`${where}/ca.cnf`, caConfig);
  await Deno.writeTextFile(`${where}/server.cnf`, serverConfig);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl(
    [
      "req",
      "-x509",
      ...ec,
      "-config",
      "ca.cnf",
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "2",
    ],
    where,
  );
  await openssl(
    ["req", "-new", ...ec, "-config", "server.cnf", "-keyout", "server.key", "-out", "server.csr"],
    where,
  );
  const serial = `0x${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  await openssl([
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-set_serial",
    serial,
    "-days",
    "2",
    "-extfile",
    "server.cnf",
    "-extensions",
    "server",
    "-out",
    "server.crt",
  ], where);
  return {
    dir: where,
    caPem: await Deno.readTextFile(`${where}/ca.crt`),
    certPem: await Deno.readTextFile(`${where}/server.crt`),
    keyPem: await Deno.readTextFile(`${where}/server.key`),
  };
}

/** What goes into the kubeconfig. */
export interface KubeconfigParams {
  /** Server URL (`https://127.0.0.1:<port>` or `http://...`). */
  server: string;
  /** CA certificate (PEM) for HTTPS; absent for HTTP. */
  caPem?: string;
  /** Bearer token of the user. */
  token: string;
  /** Default namespace of the context. */
  namespace?: string;
}

/**
 * A kubeconfig (YAML) usable by kubectl and client-node's `loadFromFile`.
 * HTTP servers get `insecure-skip-tls-verify: true`, which client-node
 * requires before it talks plain HTTP.
 */
export function kubeconfigYaml(params: KubeconfigParams): string {
  const cluster = params.caPem !== undefined
    ? `    certificate-authority-data: ${btoa(params.caPem)}`
    : `    insecure-skip-tls-verify: true`;
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: sim",
    "  cluster:",
    `    server: ${params.server}`,
    cluster,
    "contexts:",
    "- name: sim",
    "  context:",
    "    cluster: sim",
    "    user: sim",
    `    namespace: ${params.namespace ?? "default"}`,
    "current-context: sim",
    "users:",
    "- name: sim",
    "  user:",
    `    token: ${params.token}`,
    "preferences: {}",
    "",
  ].join("\n");
}
