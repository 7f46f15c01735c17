export { inputGradients, saliency, integratedGradients, type Scorer, type AttributionOptions, type IntegratedGradientsOptions } from './attribution.js';
