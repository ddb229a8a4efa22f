/** Either model kind the image predictors accept; `kind` tells them apart. */
import type { Sam2Model } from './sam2';
import type { Sam1Model } from './sam1/sam1';

export type SamModel = Sam2Model | Sam1Model;
export type ModelKind = SamModel['kind'];
