// Every cryptographic step of the browser peer, on libsodium (the same library the Rust peers
// use, so the primitives match byte for byte): identity and session keys, signing the byte
// strings of docs/protocol.md, sealing and opening bodies, the mesh key and its commitment,
// and the link code.

import sodium from "libsodium-wrappers";
import { Bytes, PROTOCOL_VERSION, Role, Uuid } from "./wire";

export async function ready(): Promise<void> {
  await sodium.ready;
}

export interface SigningPair {
  publicKey: Bytes; // ed25519, 32
  secretKey: Bytes; // 64 (seed ‖ public key), libsodium layout
}

export interface BoxPair {
  publicKey: Bytes; // x25519, 32
  secretKey: Bytes; // 32
}

export function signingPair(): SigningPair {
  const k = sodium.crypto_sign_keypair();
  return { publicKey: k.publicKey, secretKey: k.privateKey };
}

export function signingFromSecret(secret: Bytes): SigningPair {
  if (secret.length !== 64) throw new Error("a member secret key is 64 bytes");
  return { publicKey: secret.slice(32), secretKey: secret };
}

export function boxPair(): BoxPair {
  const k = sodium.crypto_box_keypair();
  return { publicKey: k.publicKey, secretKey: k.privateKey };
}

export function boxFromSecret(secret: Bytes): BoxPair {
  return { publicKey: sodium.crypto_scalarmult_base(secret), secretKey: secret };
}

export function sign(pair: SigningPair, message: Bytes): Bytes {
  return sodium.crypto_sign_detached(message, pair.secretKey);
}

export function verify(publicKey: Bytes, message: Bytes, signature: Bytes): boolean {
  try {
    return sodium.crypto_sign_verify_detached(signature, message, publicKey);
  } catch {
    return false;
  }
}

export function random(n: number): Bytes {
  return sodium.randombytes_buf(n);
}

export function hash32(data: Bytes): Bytes {
  return sodium.crypto_generichash(32, data, null);
}

// ---------------------------------------------------------------------------------------------
// Sealing bodies (docs/protocol.md, "Sealing and plaintext")

export interface Sealed {
  nonce: Bytes;
  ciphertext: Bytes;
}

/// To a session's x25519 key, from ours.
export function boxTo(recipient: Bytes, from: BoxPair, plaintext: Bytes): Sealed {
  const nonce = random(24);
  return { nonce, ciphertext: sodium.crypto_box_easy(plaintext, nonce, recipient, from.secretKey) };
}

/// To a member's ed25519 key (converted), from our session.
export function boxToMember(memberPubkey: Bytes, from: BoxPair, plaintext: Bytes): Sealed {
  return boxTo(sodium.crypto_sign_ed25519_pk_to_curve25519(memberPubkey), from, plaintext);
}

export function openBox(sender: Bytes, own: BoxPair, nonce: Bytes, ciphertext: Bytes): Bytes {
  return sodium.crypto_box_open_easy(ciphertext, nonce, sender, own.secretKey);
}

/// A `box_member` body, opened with the member's ed25519 secret converted.
export function openAsMember(sender: Bytes, member: SigningPair, nonce: Bytes, ciphertext: Bytes): Bytes {
  const sk = sodium.crypto_sign_ed25519_sk_to_curve25519(member.secretKey);
  return sodium.crypto_box_open_easy(ciphertext, nonce, sender, sk);
}

/// With the mesh key of `epoch`: the nonce is the epoch (big-endian u32) and 20 random bytes,
/// so every mesh-key ciphertext names the key that opens it (docs/protocol.md, "Key epochs").
export function secretbox(key: Bytes, epoch: number, plaintext: Bytes): Sealed {
  const nonce = random(24);
  nonce.set(new ByteString().u32(epoch).bytes(), 0);
  return { nonce, ciphertext: sodium.crypto_secretbox_easy(plaintext, nonce, key) };
}

/// The key epoch a mesh-key nonce names.
export function meshKeyEpoch(nonce: Bytes): number {
  return nonce.length < 4 ? 0 : ((nonce[0] << 24) | (nonce[1] << 16) | (nonce[2] << 8) | nonce[3]) >>> 0;
}

/// `crypto_box_seal` to a member's ed25519 key (converted): a rotated mesh key.
export function sealToMember(memberPubkey: Bytes, plaintext: Bytes): Bytes {
  return sodium.crypto_box_seal(plaintext, sodium.crypto_sign_ed25519_pk_to_curve25519(memberPubkey));
}

/// Open something sealed with [`sealToMember`] to this member.
export function openSealedAsMember(member: SigningPair, sealed: Bytes): Bytes {
  const pk = sodium.crypto_sign_ed25519_pk_to_curve25519(member.publicKey);
  const sk = sodium.crypto_sign_ed25519_sk_to_curve25519(member.secretKey);
  return sodium.crypto_box_seal_open(sealed, pk, sk);
}

export function newMeshKey(): Bytes {
  return random(32);
}

export function openSecretbox(key: Bytes, nonce: Bytes, ciphertext: Bytes): Bytes {
  return sodium.crypto_secretbox_open_easy(ciphertext, nonce, key);
}

/// `crypto_box_seal`: anonymous sealing to an x25519 key (mesh key grants, link bundles).
export function sealAnonymous(recipient: Bytes, plaintext: Bytes): Bytes {
  return sodium.crypto_box_seal(plaintext, recipient);
}

export function openAnonymous(own: BoxPair, sealed: Bytes): Bytes {
  return sodium.crypto_box_seal_open(sealed, own.publicKey, own.secretKey);
}

export const utf8 = new TextEncoder();
export const fromUtf8 = new TextDecoder("utf-8", { fatal: false });

// ---------------------------------------------------------------------------------------------
// Signed byte strings (proto/src/signing.rs): a domain tag, big-endian integers, u32-length-
// prefixed variable fields.

class ByteString {
  private parts: number[] = [];
  tag(s: string): this {
    for (const b of utf8.encode(s)) this.parts.push(b);
    this.parts.push(0);
    return this;
  }
  raw(b: Bytes): this {
    for (const x of b) this.parts.push(x);
    return this;
  }
  lv(b: Bytes): this {
    this.u32(b.length);
    return this.raw(b);
  }
  u8(n: number): this {
    this.parts.push(n & 0xff);
    return this;
  }
  u16(n: number): this {
    this.parts.push((n >> 8) & 0xff, n & 0xff);
    return this;
  }
  u32(n: number): this {
    this.parts.push((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
    return this;
  }
  u64(n: number): this {
    const hi = Math.floor(n / 2 ** 32);
    return this.u32(hi).u32(n >>> 0);
  }
  bytes(): Bytes {
    return Uint8Array.from(this.parts);
  }
}

export function helloBytes(
  mesh: Uuid,
  member: Uuid,
  session: Uuid,
  sessionPubkey: Bytes,
  timestampMs: number,
  nonce: Bytes,
): Bytes {
  return new ByteString()
    .tag("plexus/hello/v1")
    .u16(PROTOCOL_VERSION)
    .raw(mesh)
    .raw(member)
    .raw(session)
    .lv(sessionPubkey)
    .u64(timestampMs)
    .lv(nonce)
    .bytes();
}

const ROLE_BYTE: Record<Role, number> = { member: 1, admin: 2, owner: 3 };

export function inviteBytes(mesh: Uuid, code: string, role: Role, maxUses: number, expiresAtMs: number): Bytes {
  return new ByteString()
    .tag("plexus/invite/v1")
    .raw(mesh)
    .lv(utf8.encode(code))
    .u8(ROLE_BYTE[role])
    .u32(maxUses)
    .u64(expiresAtMs)
    .bytes();
}

export function claimBytes(code: string, member: Uuid, memberPubkey: Bytes, claimPubkey: Bytes): Bytes {
  return new ByteString().tag("plexus/claim/v1").lv(utf8.encode(code)).raw(member).lv(memberPubkey).lv(claimPubkey).bytes();
}

export function keyCommitmentBytes(mesh: Uuid, commitment: Bytes): Bytes {
  return new ByteString().tag("plexus/key-commitment/v1").raw(mesh).lv(commitment).bytes();
}

export function meshKeyCommitment(mesh: Uuid, meshKey: Bytes): Bytes {
  return hash32(new ByteString().tag("plexus/mesh-key/v1").raw(mesh).lv(meshKey).bytes());
}

/// The commitment to the mesh key of a rotated epoch.
export function epochKeyCommitment(mesh: Uuid, epoch: number, key: Bytes): Bytes {
  return hash32(new ByteString().tag("plexus/epoch-key/v1").raw(mesh).u32(epoch).lv(key).bytes());
}

/// What the rotating member signs.
export function keyRotationBytes(mesh: Uuid, epoch: number, commitment: Bytes): Bytes {
  return new ByteString().tag("plexus/key-rotation/v1").raw(mesh).u32(epoch).lv(commitment).bytes();
}

/// One audit entry as listed (proto/src/audit.rs).
export interface AuditEntry {
  seq: number;
  at_ms: number;
  actor_member?: Uuid | null;
  actor_name: string;
  action: string;
  subject: string;
  detail: string;
  hash: Bytes;
}

/// An audit entry's hash: BLAKE2b-256 over its canonical bytes and the previous entry's hash.
export function auditEntryHash(mesh: Uuid, prevHash: Bytes, e: AuditEntry): Bytes {
  return hash32(
    new ByteString()
      .tag("plexus/audit/v1")
      .raw(mesh)
      .u64(e.seq)
      .u64(e.at_ms)
      .lv(e.actor_member ?? new Uint8Array())
      .lv(utf8.encode(e.actor_name))
      .lv(utf8.encode(e.action))
      .lv(utf8.encode(e.subject))
      .lv(utf8.encode(e.detail))
      .lv(prevHash)
      .bytes(),
  );
}

/// Recompute the chain from its checkpoint: null when intact, else the first break.
export function auditChainBreak(mesh: Uuid, checkpoint: { seq: number; hash: Bytes }, entries: AuditEntry[]): string | null {
  let [seq, prev] = [checkpoint.seq, checkpoint.hash];
  for (const e of entries) {
    if (e.seq !== seq + 1) return `entry ${seq + 1} is missing (the next one is ${e.seq})`;
    if (!sodium.memcmp(auditEntryHash(mesh, prev, e), e.hash)) {
      return `entry ${e.seq} (${e.action} by ${e.actor_name}) was altered: its hash does not match`;
    }
    [seq, prev] = [e.seq, e.hash];
  }
  return null;
}

/// Whether a granted mesh key is the one the owner committed to (docs/protocol.md, "The mesh
/// key"). With no commitment known there is nothing to check it against.
export function keyMatchesCommitment(
  mesh: Uuid,
  meshKey: Bytes,
  commitment: Bytes | null | undefined,
  signature: Bytes | null | undefined,
  ownerPubkey: Bytes | null | undefined,
): boolean {
  if (!commitment) return true;
  if (!signature || !ownerPubkey || !verify(ownerPubkey, keyCommitmentBytes(mesh, commitment), signature)) return false;
  const actual = meshKeyCommitment(mesh, meshKey);
  return sodium.memcmp(actual, commitment);
}

// ---------------------------------------------------------------------------------------------
// Link codes (proto/src/link.rs)

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

export function linkCode(linkPubkey: Bytes): string {
  const digest = hash32(new ByteString().tag("plexus/link/v1").raw(linkPubkey).bytes());
  let bits = 0n;
  for (let i = 0; i < 8; i++) bits = (bits << 8n) | BigInt(digest[i]);
  let code = "";
  for (let i = 0; i < 10; i++) code += ALPHABET[Number((bits >> BigInt(59 - 5 * i)) & 31n)];
  return code;
}

export function displayCode(code: string): string {
  return `${code.slice(0, 5)}-${code.slice(5)}`;
}

export function fingerprint(publicKey: Bytes): string {
  const h = sodium.crypto_generichash(8, publicKey, null);
  return Array.from(h, (b) => b.toString(16).padStart(2, "0")).join("");
}
