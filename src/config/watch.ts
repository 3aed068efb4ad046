/**
 * Watches a file for changes, including editors' write-to-temp-then-rename: the directory is
 * watched (a rename replaces the inode a file watch would follow), events are debounced.
 */
import { type FSWatcher, watch } from "node:fs";
import { basename, dirname } from "node:path";

export function watchFile(path: string, onChange: () => void, debounceMs = 150): () => void {
  const name = basename(path);
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
      if (file !== null && file.toString() !== name) return;
      clearTimeout(timer);
      timer = setTimeout(onChange, debounceMs);
    });
  } catch {
    return () => {};
  }
  return () => {
    clearTimeout(timer);
    watcher?.close();
  };
}
