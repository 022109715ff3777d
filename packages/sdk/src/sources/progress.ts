/** Progress of loading a model: bytes per file and overall while downloading, then build/load phases. */
export type LoadProgress =
  | {
      readonly phase: 'download';
      readonly file: string;
      /** bytes of this file present (resumed bytes count as done) */
      readonly loaded: number;
      readonly total: number;
      readonly overallLoaded: number;
      readonly overallTotal: number;
    }
  | {
      readonly phase: 'build' | 'load';
      readonly graph: string;
      readonly done: number;
      readonly total: number;
    };

export type ProgressCallback = (event: LoadProgress) => void;
