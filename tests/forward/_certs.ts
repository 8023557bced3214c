/**
 * A throwaway PKI made by openssl for the TLS tests: a CA, a server leaf
 * for 127.0.0.1/localhost signed by it, an unrelated second CA, and a
 * client certificate from each.
 *
 * @module
 */

/** Paths of the files {@linkcode makeCerts} wrote. */
export interface TestPki extends AsyncDisposable {
  dir: string;
  ca: string;
  cert: string;
  key: string;
  otherCa: string;
  /** A leaf signed by the CA whose validity ended before it began (-days -1). */
  expiredCert: string;
  expiredKey: string;
  /** A client certificate (clientAuth) signed by the CA. */
  clientCert: string;
  /** The same client key in an X.509 v1 certificate (no extensions). */
  clientV1Cert: string;
  clientKey: string;
  /** A client certificate signed by the other CA. */
  strangerCert: string;
  strangerKey: string;
}

/**
 * Creates the CA, the leaf (CA:FALSE, as rustls requires), another CA, an
 * expired leaf, and client certificates from each CA in a temp dir.
 */
export async function makeCerts(): Promise<TestPki> {
  const dir = await Deno.makeTempDir({ prefix: "denocat-pki-" });
  await Deno.writeTextFile(
    `${dir}/server.ext`,
    "basicConstraints=critical,CA:FALSE\n" +
      "subjectAltName=IP:127.0.0.1,DNS:localhost\n" +
      "extendedKeyUsage=serverAuth\n",
  );
  await Deno.writeTextFile(
    `${dir}/client.ext`,
    "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n",
  );
  const ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const r = await new Deno.Command("sh", {
    args: [
      "-c",
      `openssl req -x509 ${ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=denocat-test-ca &&
       openssl req ${ec} -keyout server.key -out server.csr -subj /CN=localhost &&
       openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
         -out server.pem -days 2 -extfile server.ext &&
       openssl req -x509 ${ec} -keyout other.key -out other.pem -days 2 -subj /CN=other-ca &&
       openssl req ${ec} -keyout expired.key -out expired.csr -subj /CN=localhost &&
       openssl x509 -req -in expired.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
         -out expired.pem -days -1 -extfile server.ext &&
       openssl req ${ec} -keyout client.key -out client.csr -subj /CN=denocat-client &&
       openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
         -out client.pem -days 2 -extfile client.ext &&
       openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
         -out client-v1.pem -days 2 &&
       openssl req ${ec} -keyout stranger.key -out stranger.csr -subj /CN=stranger &&
       openssl x509 -req -in stranger.csr -CA other.pem -CAkey other.key -CAcreateserial \
         -out stranger.pem -days 2 -extfile client.ext`,
    ],
    cwd: dir,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!r.success) {
    await Deno.remove(dir, { recursive: true });
    throw new Error(`openssl failed: ${new TextDecoder().decode(r.stderr)}`);
  }
  return {
    dir,
    ca: `${dir}/ca.pem`,
    cert: `${dir}/server.pem`,
    key: `${dir}/server.key`,
    otherCa: `${dir}/other.pem`,
    expiredCert: `${dir}/expired.pem`,
    expiredKey: `${dir}/expired.key`,
    clientCert: `${dir}/client.pem`,
    clientV1Cert: `${dir}/client-v1.pem`,
    clientKey: `${dir}/client.key`,
    strangerCert: `${dir}/stranger.pem`,
    strangerKey: `${dir}/stranger.key`,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}
