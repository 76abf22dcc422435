/**
 * A certificate authority and a server certificate for 127.0.0.1 and
 * localhost, made at test time with `openssl` (P-256, valid for a day) in a
 * temporary directory. Clients trust the CA per connection
 * (`Deno.createHttpClient({ caCerts })`), never by turning verification off.
 *
 * @module
 */

/** The files and the CA to trust. */
export interface TestCertificate {
  /** The CA certificate (PEM) clients trust. */
  caPem: string;
  /** The server certificate chain file (`--tls-cert`). */
  certFile: string;
  /** The server key file (`--tls-key`). */
  keyFile: string;
  /** A `fetch` client trusting the CA; close it with {@linkcode TestCertificate.remove}. */
  httpClient: Deno.HttpClient;
  /** Closes the client and deletes the files. */
  remove(): Promise<void>;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const { code, stderr } = await new Deno.Command("openssl", {
    args,
    cwd,
    stdout: "null",
    stderr: "piped",
  })
    .output();
  if (code !== 0) throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(stderr)}`);
}

/** Makes the CA and the server certificate. */
export async function makeTestCertificate(): Promise<TestCertificate> {
  const dir = await Deno.makeTempDir({ prefix: "rune-tls-" });
  const ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
  const steps = [
    `req -x509 ${ec} -keyout ca.key -out ca.pem -days 1 -subj /CN=rune-test-ca ` +
    "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign",
    `req ${ec} -keyout server.key -out server.csr -subj /CN=localhost`,
    "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem " +
    "-days 1 -extfile server.ext",
  ];
  await Deno.writeTextFile(
    `${dir}/server.ext`,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n" +
      "extendedKeyUsage=serverAuth\n",
  );
  for (const step of steps) await openssl(step.split(" "), dir);
  const caPem = await Deno.readTextFile(`${dir}/ca.pem`);
  const httpClient = Deno.createHttpClient({ caCerts: [caPem] });
  return {
    caPem,
    certFile: `${dir}/server.pem`,
    keyFile: `${dir}/server.key`,
    httpClient,
    async remove() {
      httpClient.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
